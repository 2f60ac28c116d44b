//! What an answered sign-in survives (`idgate serve --durability`): with either setting, a
//! `kill -9` of the process loses no sign-in it answered (the session still works after a
//! restart and its token is still refused as used); the setting reaches every connection.

use diesel::prelude::*;
use idgate::db::{Database, Durability};
use idgate_test_support::provider::{MockProvider, TestKey};

use crate::helpers::{
    ServeProcess, TestDb, async_on_both_backends, idgate, session_cookie, signin_config, stderr,
};

async fn answered_sign_ins_survive_kill_9(db: TestDb, durability: &str) {
    let key = TestKey::rsa("rsa1", "rsa1");
    let provider = MockProvider::start(vec![key.clone()]).await;
    let dir = db.dir.path();
    std::fs::write(dir.join("identity.yaml"), signin_config(&provider.url))
        .unwrap_or_else(|e| panic!("{e}"));
    let added = idgate(
        dir,
        &db.url,
        &["members", "add", "--email", "ana@example.org"],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let client = reqwest::Client::new();
    let now = idgate::clock::unix_now();
    let tokens: Vec<String> = (0..5)
        .map(|_| provider.token(&key, &provider.claims("ana@example.org", now)))
        .collect();

    let serve = ServeProcess::start(dir, &db.url, &["--durability", durability]);
    let mut sessions = Vec::new();
    for token in &tokens {
        let response = client
            .post(format!("{}/authenticate", serve.address))
            .form(&[("action", "login"), ("id_token", token.as_str())])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 200);
        sessions.push(
            session_cookie(&response)
                .unwrap_or_else(|| panic!("no cookie"))
                .0,
        );
    }
    serve.signal("-KILL");
    serve.wait();

    let serve = ServeProcess::start(dir, &db.url, &["--durability", durability]);
    for session in &sessions {
        let auth = client
            .get(format!("{}/auth", serve.address))
            .header("Cookie", format!("idgate_session={session}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(auth.status(), 200, "a session answered before the kill");
    }
    for token in &tokens {
        let again = client
            .post(format!("{}/authenticate", serve.address))
            .header("Accept", "application/json")
            .form(&[("action", "login"), ("id_token", token.as_str())])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.status(), 401);
        let body = again.text().await.unwrap_or_default();
        assert!(body.contains("replayed"), "{body}");
    }
}

async fn answered_sign_ins_survive_kill_9_when_each_commit_waits_for_the_disk(db: TestDb) {
    answered_sign_ins_survive_kill_9(db, "power-loss").await;
}

async fn answered_sign_ins_survive_kill_9_when_commits_do_not_wait_for_the_disk(db: TestDb) {
    answered_sign_ins_survive_kill_9(db, "process-crash").await;
}

/// The setting reaches the connections: SQLite's `synchronous` (FULL is 2, NORMAL 1) and
/// PostgreSQL's `synchronous_commit` (the server's own for `power-loss`, off for
/// `process-crash`).
async fn the_durability_reaches_the_connections(db: TestDb) {
    #[derive(QueryableByName)]
    struct Synchronous {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        synchronous: i64,
    }
    #[derive(QueryableByName)]
    struct SynchronousCommit {
        #[diesel(sql_type = diesel::sql_types::Text)]
        synchronous_commit: String,
    }
    let setting = |durability: Durability| -> String {
        let database = Database::open_with(&db.url, durability).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
        match &mut *conn {
            idgate::db::AnyConnection::Sqlite(c) => diesel::sql_query("PRAGMA synchronous")
                .get_result::<Synchronous>(c)
                .map(|row| row.synchronous.to_string()),
            idgate::db::AnyConnection::Postgresql(c) => {
                diesel::sql_query("SHOW synchronous_commit")
                    .get_result::<SynchronousCommit>(c)
                    .map(|row| row.synchronous_commit)
            }
        }
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let postgres = db.url.starts_with("postgres");
    // On PostgreSQL the default leaves the server's own setting.
    let server_default = || -> String {
        use diesel::Connection as _;
        let mut c = diesel::pg::PgConnection::establish(&db.url).unwrap_or_else(|e| panic!("{e}"));
        diesel::sql_query("SHOW synchronous_commit")
            .get_result::<SynchronousCommit>(&mut c)
            .map(|row| row.synchronous_commit)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        setting(Durability::PowerLoss),
        if postgres {
            server_default()
        } else {
            "2".to_string()
        }
    );
    assert_eq!(
        setting(Durability::ProcessCrash),
        if postgres { "off" } else { "1" }
    );
}

async_on_both_backends!(
    answered_sign_ins_survive_kill_9_when_each_commit_waits_for_the_disk,
    answered_sign_ins_survive_kill_9_when_commits_do_not_wait_for_the_disk,
    the_durability_reaches_the_connections,
);
