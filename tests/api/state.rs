//! The sign-in rules run on an `AppState` built without an HTTP server: no port is bound, the
//! rules take the state and answer domain values.

use std::sync::Arc;

use idgate::clock::ManualClock;
use idgate::members::{Email, MemberStatus, NewMember};
use idgate::reason::Reason;
use idgate::settings::Settings;
use idgate::signin::{Attempt, Expected, SignInError};
use idgate::state::AppState;

use crate::helpers::{TestDb, signin_config};
use idgate_test_support::provider::{MockProvider, TestKey};

async fn sign_ins_on_a_state_without_a_server(db: TestDb) {
    let key = TestKey::rsa("rsa1", "rsa1");
    let provider = MockProvider::start(vec![key.clone()]).await;
    let yaml = db.dir.path().join("identity.yaml");
    std::fs::write(&yaml, signin_config(&provider.url)).expect("write the configuration");
    let config = idgate::identity::load(&yaml).expect("a valid configuration");
    let now = idgate::clock::unix_now();
    let database = db.open();
    let state = AppState::new(
        Settings::default(),
        config,
        database.clone(),
        Arc::new(ManualClock::starting_at(now)),
    )
    .expect("the state");
    let member = {
        let mut conn = database.conn().expect("connection");
        let new = NewMember {
            email: Email::parse("ana@example.org").expect("email"),
            username: None,
            firstname: "Ana".into(),
            surname: "Lima".into(),
            status: MemberStatus::Activated,
            admin: false,
        };
        idgate::db::members::insert_member(&mut conn, &new, now).expect("member")
    };

    let token = provider.token(&key, &provider.claims("ana@example.org", now));
    let attempt = Attempt::default();
    let signed_in = idgate::signin::sign_in(&state, &token, Expected::default(), &attempt)
        .await
        .expect("a session");
    assert_eq!(signed_in.view.member.id, member.id);
    assert_eq!(signed_in.view.provider, "mock");
    assert!(idgate::ids::session_key(&signed_in.session_id).is_some());

    let again = idgate::signin::sign_in(&state, &token, Expected::default(), &attempt).await;
    assert!(
        matches!(
            again,
            Err(SignInError::Refused {
                reason: Reason::Replayed,
                ..
            })
        ),
        "{again:?}"
    );
    let stranger = provider.token(&key, &provider.claims("bob@example.org", now));
    let refused = idgate::signin::sign_in(&state, &stranger, Expected::default(), &attempt).await;
    assert!(
        matches!(
            refused,
            Err(SignInError::Refused {
                reason: Reason::NoMember,
                ..
            })
        ),
        "{refused:?}"
    );
}

crate::helpers::async_on_both_backends!(sign_ins_on_a_state_without_a_server);
