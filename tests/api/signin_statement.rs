//! The common sign-in in one statement on PostgreSQL (`find_member_and_sign_in`): it stores the
//! session only when every rule that the member's row decides passes, and else writes nothing.
//! The sign-in rules' tests (both backends) check the answers; these check the statement's own
//! conditions, one by one.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use idgate::audit::{Event, Outcome, SecurityEvent};
use idgate::db::AnyConnection;
use idgate::db::members::{self, SignInIdentity};
use idgate::db::sessions::{
    ClaimedToken, FromToken, NewSession, SignInClaim, find_member_and_sign_in,
};
use idgate::members::{Email, MemberStatus, NewMember};

use crate::helpers::TestDb;

const ISSUER: &str = "https://mock.example";

fn member(conn: &mut AnyConnection, email: &str, username: &str, status: MemberStatus) -> i64 {
    let new = NewMember {
        email: Email::parse(email).unwrap_or_else(|e| panic!("{e}")),
        username: Some(username.into()),
        firstname: String::new(),
        surname: String::new(),
        status,
        admin: false,
    };
    members::insert_member(conn, &new, 1)
        .unwrap_or_else(|e| panic!("{e}"))
        .id
}

fn count(conn: &mut diesel::PgConnection, query: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("({query})")))
        .get_result(conn)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// A sign-in of `email` with `subject` and token `token`, API accounts `barred`: the member
/// found (its id) and whether the session was stored.
fn sign_in(
    conn: &mut diesel::PgConnection,
    email: &str,
    subject: Option<&str>,
    token: &str,
    barred: &[String],
) -> Option<(i64, bool)> {
    let email = Email::parse(email).unwrap_or_else(|e| panic!("{e}"));
    let providers = vec!["mock".to_string()];
    let session = format!("session of {token}");
    let mut event = SecurityEvent::new(Event::Login, Outcome::Success, format!("incident {token}"));
    event.provider = Some("mock".into());
    let claim = SignInClaim {
        who: SignInIdentity {
            email: &email,
            issuer: ISSUER,
            subject,
            providers: &providers,
        },
        statuses: &MemberStatus::MAY_SIGN_IN.map(|s| s.as_str()),
        barred_usernames: barred,
        token: ClaimedToken {
            fingerprint: token,
            usable_until: 5_000,
        },
        new: &NewSession {
            id_hash: &session,
            provider: "mock",
            now: 1_000,
            expires_at: 4_600,
            from_token: Some(FromToken {
                issuer: ISSUER,
                subject,
                sid: None,
                id_token: None,
            }),
        },
        event: &event,
    };
    find_member_and_sign_in(conn, claim)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|(found, stored)| (found.member.id, stored))
}

#[test]
fn a_sign_in_in_one_statement_stores_only_what_every_rule_allows() {
    let Some(db) = TestDb::postgres() else { return };
    let database = db.open();
    let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let conn: &mut AnyConnection = &mut pooled;
    let ana = member(conn, "ana@example.org", "ana", MemberStatus::Activated);
    let set = member(conn, "set@example.org", "set", MemberStatus::SetPassword);
    let off = member(conn, "off@example.org", "off", MemberStatus::Disabled);
    let new = member(conn, "new@example.org", "new", MemberStatus::Unactivated);
    let locked = member(
        conn,
        "locked@example.org",
        "locked",
        MemberStatus::Activated,
    );
    let robot = member(conn, "robot@example.org", "Robot", MemberStatus::Activated);
    let unbound = member(
        conn,
        "unbound@example.org",
        "unbound",
        MemberStatus::Activated,
    );
    let legacy = member(
        conn,
        "legacy@example.org",
        "legacy",
        MemberStatus::Activated,
    );
    for (id, subject) in [
        (ana, "sub-ana"),
        (set, "sub-set"),
        (off, "sub-off"),
        (new, "sub-new"),
        (locked, "sub-locked"),
        (robot, "sub-robot"),
        (legacy, "sub-legacy"),
    ] {
        assert!(
            members::bind_subject(conn, id, ISSUER, "mock", subject, 1)
                .unwrap_or_else(|e| panic!("{e}"))
        );
    }
    let email = |text: &str| Email::parse(text).unwrap_or_else(|e| panic!("{e}"));
    members::set_locked(conn, &email("locked@example.org"), true, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let AnyConnection::Postgresql(c) = conn else {
        panic!("a PostgreSQL connection")
    };
    // A binding stored by provider and not carried over to its issuer, to another subject.
    c.batch_execute(&format!(
        "INSERT INTO member_bindings (member_id, provider, subject, created_at) \
         VALUES ({legacy}, 'mock', 'sub-elsewhere', 1)"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let none: Vec<String> = Vec::new();
    let robots = vec!["robot".to_string()];

    // Every rule passes: the token's row, the session and the event, all of the member found.
    assert_eq!(
        sign_in(c, "Ana@Example.org", Some("sub-ana"), "t1", &none),
        Some((ana, true))
    );
    assert_eq!(
        sign_in(c, "set@example.org", Some("sub-set"), "t2", &robots),
        Some((set, true))
    );
    assert_eq!(
        count(
            c,
            &format!(
                "SELECT count(*) FROM sessions WHERE id_hash = 'session of t1' AND member_id = {ana} AND subject = 'sub-ana'"
            )
        ),
        1
    );
    assert_eq!(
        count(
            c,
            &format!(
                "SELECT count(*) FROM security_log WHERE incident = 'incident t1' AND member_id = {ana} AND outcome = 'success'"
            )
        ),
        1
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM used_tokens WHERE token_hash = 't1'"
        ),
        1
    );

    // Each rule the row decides, alone: the member is found, nothing is written.
    let refused = [
        (
            sign_in(c, "ana@example.org", Some("sub-ana"), "t1", &none),
            ana,
            "the token used before",
        ),
        (
            sign_in(c, "ana@example.org", Some("sub-other"), "t3", &none),
            ana,
            "another subject",
        ),
        (
            sign_in(c, "ana@example.org", None, "t4", &none),
            ana,
            "no subject",
        ),
        (
            sign_in(c, "off@example.org", Some("sub-off"), "t5", &none),
            off,
            "disabled",
        ),
        (
            sign_in(c, "new@example.org", Some("sub-new"), "t6", &none),
            new,
            "unactivated",
        ),
        (
            sign_in(c, "locked@example.org", Some("sub-locked"), "t7", &none),
            locked,
            "locked",
        ),
        (
            sign_in(c, "robot@example.org", Some("sub-robot"), "t8", &robots),
            robot,
            "an API account",
        ),
        (
            sign_in(c, "unbound@example.org", Some("sub-unbound"), "t9", &none),
            unbound,
            "a first binding",
        ),
        (
            sign_in(c, "legacy@example.org", Some("sub-legacy"), "t10", &none),
            legacy,
            "a binding not carried over",
        ),
    ];
    for (answer, id, case) in refused {
        assert_eq!(answer, Some((id, false)), "{case}");
    }
    assert_eq!(
        sign_in(c, "nobody@example.org", Some("sub"), "t11", &none),
        None
    );
    assert_eq!(count(c, "SELECT count(*) FROM sessions"), 2);
    assert_eq!(count(c, "SELECT count(*) FROM security_log"), 2);
    assert_eq!(count(c, "SELECT count(*) FROM used_tokens"), 2);

    // The API account from one of its addresses (nobody barred) signs in.
    assert_eq!(
        sign_in(c, "robot@example.org", Some("sub-robot"), "t8", &none),
        Some((robot, true))
    );
}
