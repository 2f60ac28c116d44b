//! The database schema, written by hand to match both migration folders.

diesel::table! {
    members (id) {
        id -> BigInt,
        email -> Text,
        email_normalized -> Text,
        username -> Text,
        username_normalized -> Text,
        firstname -> Text,
        surname -> Text,
        status -> Text,
        locked -> Bool,
        admin -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    member_bindings (member_id, provider) {
        member_id -> BigInt,
        provider -> Text,
        subject -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    identity_bindings (member_id, issuer) {
        member_id -> BigInt,
        issuer -> Text,
        subject -> Text,
        provider -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        member_id -> BigInt,
        provider -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        issuer -> Nullable<Text>,
        subject -> Nullable<Text>,
        sid -> Nullable<Text>,
        id_token -> Nullable<Text>,
    }
}

diesel::table! {
    used_tokens (token_hash) {
        token_hash -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    security_log (id) {
        id -> BigInt,
        at -> BigInt,
        event -> Text,
        outcome -> Text,
        reason -> Nullable<Text>,
        provider -> Nullable<Text>,
        email -> Nullable<Text>,
        member_id -> Nullable<BigInt>,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        incident -> Text,
        email_source -> Nullable<Text>,
    }
}

diesel::table! {
    login_flows (state_hash) {
        state_hash -> Text,
        browser_hash -> Text,
        provider -> Text,
        nonce -> Text,
        code_verifier -> Text,
        redirect_uri -> Text,
        redirect -> Nullable<Text>,
        expires_at -> BigInt,
    }
}

diesel::table! {
    auth_codes (code_hash) {
        code_hash -> Text,
        member_id -> BigInt,
        client_id -> Text,
        provider -> Text,
        expires_at -> BigInt,
        issuer -> Nullable<Text>,
        subject -> Nullable<Text>,
        sid -> Nullable<Text>,
    }
}

diesel::joinable!(member_bindings -> members (member_id));
diesel::joinable!(identity_bindings -> members (member_id));
diesel::joinable!(auth_codes -> members (member_id));
diesel::joinable!(sessions -> members (member_id));
diesel::allow_tables_to_appear_in_same_query!(
    members,
    member_bindings,
    identity_bindings,
    sessions,
    auth_codes
);
