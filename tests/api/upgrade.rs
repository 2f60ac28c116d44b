//! Upgrades: rows an earlier version stored keep their meaning after the migrations.

use base64::Engine as _;
use diesel::connection::SimpleConnection as _;
use sha2::{Digest as _, Sha256};

use crate::helpers::{TestDb, assert_refused, async_on_both_backends, spawn_signin_app};

/// A token used to sign in before the replay guard's key began with `exp` (where the key was
/// the hash alone) is still refused as `replayed` once the migration has rewritten its row.
async fn a_token_used_before_the_replay_guard_was_reordered_is_still_refused(db: TestDb) {
    let app = spawn_signin_app(db).await;
    app.add_member("ana@example.org");
    let token = app.token_for("ana@example.org");
    let signed_part = token.rsplit_once('.').map_or("", |(head, _)| head);
    let payload = signed_part.split('.').nth(1).unwrap_or("");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let exp = claims["exp"].as_i64().unwrap_or_else(|| panic!("no exp"));
    let old_key = idgate::ids::hex(&Sha256::digest(signed_part.as_bytes()));

    // The row as the earlier version wrote it, then the migration as `serve` runs it.
    let mut conn = app.database.conn().unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute(&format!(
        "INSERT INTO used_tokens (token_hash, expires_at) VALUES ('{old_key}', {})",
        exp + 60
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let backend = if app.db.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let migration = std::fs::read_to_string(format!(
        "{}/migrations/{backend}/2026-11-25-000003_replay_guard_ordered_by_expiry/up.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute(&migration)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);

    assert_refused(app.login(&token).await, 401, "replayed").await;
    // A token never used before still signs in.
    let fresh = app.token_for("ana@example.org");
    assert_eq!(app.login(&fresh).await.status(), 200);
}

async_on_both_backends!(a_token_used_before_the_replay_guard_was_reordered_is_still_refused);
