//! Upgrades: rows an earlier version stored keep their meaning after the migrations.

use diesel::connection::SimpleConnection as _;

use crate::provider_logout::backchannel;

use crate::helpers::{
    SignInApp, TestDb, assert_refused, async_on_both_backends, spawn_signin_app,
    spawn_signin_app_configured, token_parts,
};

/// A token used to sign in before the replay guard's key began with `exp` (where the key was
/// the hash alone) is still refused as `replayed` once the migration has rewritten its row.
async fn a_token_used_before_the_replay_guard_was_reordered_is_still_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let (claims, old_key) = token_parts(&token);
    let exp = claims["exp"].as_i64().unwrap_or_else(|| panic!("no exp"));

    // The row as the earlier version wrote it, then the migration as `serve` runs it.
    let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute(&format!(
        "INSERT INTO used_tokens (token_hash, expires_at) VALUES ('{old_key}', {})",
        exp + 60
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let migration = migration_sql(
        &app,
        "2026-11-25-000003_replay_guard_ordered_by_expiry",
        "up",
    );
    conn.batch_execute(&migration)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);

    assert_refused(app.login(&token).await, 401, "replayed").await;
    // A token never used before still signs in.
    let fresh = app.token_for("ana@example.org");
    assert_eq!(app.login(&fresh).await.status(), 200);
}

/// The SQL of `step` (`up` or `down`) of the migration `name`, for the app's backend.
fn migration_sql(app: &SignInApp, name: &str, step: &str) -> String {
    let backend = if app.db.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    std::fs::read_to_string(format!(
        "{}/migrations/{backend}/{name}/{step}.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A back-channel logout token used before logout tokens' keys were set apart from ID tokens'
/// (where its key was the hash of its issuer and `jti` alone) is still refused once the
/// migration has rewritten its row.
async fn a_logout_token_used_before_its_key_was_set_apart_is_still_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    let now = app.now();
    let logout = |sid: &str| {
        app.provider.logout_token(
            &app.key,
            idgate_test_support::provider::CLIENT_ID,
            now,
            serde_json::json!({ "sid": sid }),
        )
    };
    let used = logout("sid-1");
    let (claims, _) = token_parts(&used);
    let (issuer, jti) = (claims["iss"].as_str(), claims["jti"].as_str());
    let old_key = idgate::ids::hash_id(&format!(
        "logout {} {}",
        issuer.unwrap_or_default().trim_end_matches('/'),
        jti.unwrap_or_default()
    ));

    // The row as the earlier version wrote it (kept a day after `iat`, and the leeway), then the
    // migration as `serve` runs it.
    let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute(&format!(
        "INSERT INTO used_tokens (token_hash, expires_at) VALUES ('{old_key}', {})",
        now + 86_400 + 60
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    for step in ["down", "up"] {
        let sql = migration_sql(&app, "2026-12-03-000001_replay_guard_purged_by_key", step);
        conn.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    drop(conn);

    assert_eq!(backchannel(&app, &used).await.status(), 400);
    // A logout token never used before is still taken.
    assert_eq!(backchannel(&app, &logout("sid-2")).await.status(), 200);
}

/// A binding stored by provider id (before bindings were kept per issuer) is carried over to the
/// provider's issuer when the service starts: the bound subject still signs in, another is
/// refused, and so through every provider entry on that issuer.
async fn a_binding_stored_by_provider_id_is_kept_for_its_issuer(db: TestDb) {
    let member = {
        let database = db.open();
        let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
        let new = idgate::members::NewMember {
            email: idgate::members::Email::parse("ana@example.org")
                .unwrap_or_else(|e| panic!("{e}")),
            username: None,
            firstname: String::new(),
            surname: String::new(),
            status: idgate::members::MemberStatus::Activated,
            admin: false,
        };
        let member = idgate::db::members::insert_member(&mut conn, &new, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        conn.batch_execute(&format!(
            "INSERT INTO member_bindings (member_id, provider, subject, created_at) \
             VALUES ({}, 'mock', 'old-sub', 1)",
            member.id
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        member
    };
    let app = spawn_signin_app(db).await;
    let token = |sub: &str, aud: &str| {
        let mut claims = app.provider.claims("ana@example.org", app.now());
        claims["sub"] = sub.into();
        claims["aud"] = aud.into();
        app.provider.token(&app.key, &claims)
    };
    let client = idgate_test_support::provider::CLIENT_ID;
    assert_refused(
        app.login(&token("new-sub", client)).await,
        403,
        "identity_mismatch",
    )
    .await;
    // `strict` is another entry on the same issuer: the same binding.
    assert_refused(
        app.login(&token("new-sub", "strict-client")).await,
        403,
        "identity_mismatch",
    )
    .await;
    assert_eq!(app.login(&token("old-sub", client)).await.status(), 200);
    let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
    let bindings =
        idgate::db::members::bindings_of(&mut conn, member.id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(bindings[0].issuer, app.provider.url);
    assert_eq!(bindings[0].subject, "old-sub");
}

/// A binding stored by provider id that was not carried over (here: stored after the start)
/// still binds, both ways: the rule fails closed.
async fn a_binding_not_carried_over_still_binds_both_ways(db: TestDb) {
    let app = spawn_signin_app(db).await;
    // Ana is bound through `strict`, another entry on the same issuer.
    refuses_all_but_the_bound_subjects(&app, "strict").await;
}

/// The same with one provider entry on the issuer (the rule), where a sign-in reads the member
/// and its bindings in one query on SQLite too; and a first sign-in binds, the bound subject signs
/// in again, and another subject or one bound not carried over to someone else is refused.
async fn bindings_bind_both_ways_on_an_issuer_with_one_provider_entry(db: TestDb) {
    let one_entry = |authority: &str| {
        format!(
            "defaultAuthentication: internal\nproviders:\n  - id: mock\n    title: Mock\n    \
             authorityUrl: {authority}\n    clientId: {}\ndomains:\n  - name: example.org\n    \
             authentication: external\n",
            idgate_test_support::provider::CLIENT_ID
        )
    };
    let app = spawn_signin_app_configured(db, one_entry, |_| {}).await;
    refuses_all_but_the_bound_subjects(&app, "mock").await;
    app.add_member("eve@example.org");
    let eve = |sub: &str| token_with_subject(&app, "eve@example.org", sub);
    assert_eq!(app.login(&eve("eve-1")).await.status(), 200);
    assert_eq!(app.login(&eve("eve-1")).await.status(), 200);
    for sub in ["eve-2", "bob-old"] {
        assert_refused(app.login(&eve(sub)).await, 403, "identity_mismatch").await;
    }
    let zoe = token_with_subject(&app, "zoe@example.org", "zoe");
    assert_refused(app.login(&zoe).await, 403, "no_member").await;
}

/// Ana bound by a binding not carried over (under the provider entry `ana_entry`) to `ana-old`,
/// Bob (under `mock`) to `bob-old`: Ana signs in with her old subject only, not with a new one
/// nor with Bob's.
async fn refuses_all_but_the_bound_subjects(app: &SignInApp, ana_entry: &str) {
    let ana = app.add_member("ana@example.org");
    let bob = app.add_member("bob@example.org");
    let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute(&format!(
        "INSERT INTO member_bindings (member_id, provider, subject, created_at) \
         VALUES ({}, '{ana_entry}', 'ana-old', 1), ({}, 'mock', 'bob-old', 1)",
        ana.id, bob.id
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    for sub in ["ana-new", "bob-old"] {
        let token = token_with_subject(app, "ana@example.org", sub);
        assert_refused(app.login(&token).await, 403, "identity_mismatch").await;
    }
    let token = token_with_subject(app, "ana@example.org", "ana-old");
    assert_eq!(app.login(&token).await.status(), 200);
}

/// The mock's ID token for `email` with the subject `sub`.
fn token_with_subject(app: &SignInApp, email: &str, sub: &str) -> String {
    let mut claims = app.provider.claims(email, app.now());
    claims["sub"] = sub.into();
    app.provider.token(&app.key, &claims)
}

/// The migration that lays the replay guard, the security log and the index of provider
/// sessions out for fewer pages per sign-in keeps every row's meaning, both ways: a used token
/// stays used, a session stays signed in, the security log keeps its events in order and adds
/// new ones after them.
async fn the_tables_laid_out_for_fewer_pages_keep_their_rows(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let used = app.token_for("ana@example.org");
    let signed_in = app.login(&used).await;
    assert_eq!(signed_in.status(), 200);
    let session = crate::helpers::session_cookie(&signed_in)
        .unwrap_or_else(|| panic!("a session cookie"))
        .0;
    assert_refused(app.login(&used).await, 401, "replayed").await;
    let events = |app: &SignInApp| {
        let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
        idgate::db::audit::list_events(&mut conn, 0).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut before = events(&app);
    assert_eq!(before.len(), 2, "{before:?}");

    let backend = if app.db.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let dir = format!(
        "{}/migrations/{backend}/2026-12-02-000001_fewer_pages_per_sign_in",
        env!("CARGO_MANIFEST_DIR")
    );
    for step in ["down", "up"] {
        let sql =
            std::fs::read_to_string(format!("{dir}/{step}.sql")).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
        conn.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        drop(conn);
        assert_eq!(events(&app), before, "after {step}");
        assert_refused(app.login(&used).await, 401, "replayed").await;
        app.clock.advance(3);
        assert_eq!(app.get_with_session("/auth", &session).await.status(), 200);
        let now = events(&app);
        assert_eq!(now[..before.len()], before[..]);
        assert_eq!(now.len(), before.len() + 1, "the refusal, last: {now:?}");
        before = now;
    }
    {
        let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            conn.batch_execute("DROP INDEX sessions_expires_at")
                .is_err(),
            "no index of sessions' ends is left"
        );
        if backend == "sqlite" {
            assert!(
                conn.batch_execute("SELECT rowid FROM used_tokens").is_err(),
                "the replay guard has no rowid"
            );
        }
    }
    let fresh = app.token_for("ana@example.org");
    assert_eq!(app.login(&fresh).await.status(), 200);
    let after = events(&app);
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
}

async_on_both_backends!(
    the_tables_laid_out_for_fewer_pages_keep_their_rows,
    a_token_used_before_the_replay_guard_was_reordered_is_still_refused,
    a_logout_token_used_before_its_key_was_set_apart_is_still_refused,
    a_binding_not_carried_over_still_binds_both_ways,
    bindings_bind_both_ways_on_an_issuer_with_one_provider_entry,
    a_binding_stored_by_provider_id_is_kept_for_its_issuer,
);
