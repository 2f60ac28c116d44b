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

diesel::joinable!(member_bindings -> members (member_id));
diesel::allow_tables_to_appear_in_same_query!(members, member_bindings);
