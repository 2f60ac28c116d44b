//! criterion micro-benchmarks of the two hot paths: ID-token verification with a warm key cache
//! (RS256, ES256, EdDSA; every token rule; none of the database rules) and the session check's
//! database read. `cargo bench --bench hot_paths`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark stops on the first failure"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use idgate::clock::{SystemClock, unix_now};
use idgate::metrics::Metrics;
use idgate::oidc::http::Fetcher;
use idgate::oidc::keys::KeyStore;
use idgate::oidc::verify::{Context, verify_id_token};
use idgate_test_support::provider::{self, MockProvider, TestKey};

fn verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let keys = [
        TestKey::rsa("rsa1", "rsa1"),
        TestKey::ec("ec1", "ec1"),
        TestKey::ed("ed1", "ed1"),
    ];
    let provider = runtime.block_on(MockProvider::start(keys.to_vec()));
    let yaml = format!(
        "providers:\n  - id: mock\n    title: Mock\n    authorityUrl: {}\n    clientId: {}\ndomains:\n  - name: example.org\n    authentication: external\n",
        provider.url,
        provider::CLIENT_ID
    );
    let config = idgate::identity::validate(&yaml, &|_| None).expect("config");
    let store = KeyStore::new(
        Fetcher::new().expect("fetcher"),
        Arc::new(SystemClock),
        Arc::new(Metrics::default()),
    );
    let now = unix_now();
    let mut group = c.benchmark_group("verify_id_token");
    for key in &keys {
        let mut claims = provider.claims("ana@example.org", now);
        claims["exp"] = serde_json::json!(now + 3600);
        let token = provider.token(key, &claims);
        // Warm the key cache: the benchmark measures steady state, no provider requests.
        runtime
            .block_on(verify_id_token(
                &store,
                &config,
                &token,
                Context::default(),
                unix_now,
            ))
            .expect("a valid token");
        group.bench_function(key.alg(), |b| {
            b.iter(|| {
                runtime
                    .block_on(verify_id_token(
                        &store,
                        &config,
                        black_box(&token),
                        Context::default(),
                        unix_now,
                    ))
                    .expect("valid")
            });
        });
    }
    group.finish();
}

fn session_check(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = idgate::db::Database::open(&url).expect("database");
    let mut conn = db.conn().expect("conn");
    let member = idgate::db::members::insert_member(
        &mut conn,
        &idgate::members::NewMember {
            email: idgate::members::Email::parse("ana@example.org").expect("email"),
            username: None,
            firstname: String::new(),
            surname: String::new(),
            status: idgate::members::MemberStatus::Activated,
            admin: false,
        },
        unix_now(),
    )
    .expect("member");
    let (id, hash) = idgate::ids::new_session_id();
    let now = unix_now();
    idgate::db::sessions::insert_session(
        &mut conn,
        member.id,
        &idgate::db::sessions::NewSession {
            id_hash: &hash,
            provider: "mock",
            now,
            expires_at: now + 3600,
            from_token: None,
        },
    )
    .expect("session");
    c.bench_function("session_check_sqlite", |b| {
        b.iter(|| {
            let hash = idgate::ids::session_key(black_box(&id)).expect("a session id");
            let session = idgate::db::sessions::find_session(&mut conn, &hash)
                .expect("query")
                .expect("session");
            assert!(session.is_live(now + 1, 1800));
        });
    });
}

criterion_group!(benches, verification, session_check);
criterion_main!(benches);
