//! Common sign-ins in one statement on PostgreSQL (`sign_in_together`): it stores a session
//! only when every rule that the member's row decides passes, and else writes nothing. The
//! sign-in rules' tests (both backends) check the answers; these check the statement's own
//! conditions, one by one, alone and together.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use idgate::audit::{Event, Outcome, SecurityEvent};
use idgate::db::members::{self, SignInIdentity};
use idgate::db::sessions::{
    ClaimedToken, FromToken, NewSession, SignInTogether, TokenUse, claim_token_for_session,
    sign_in_together,
};
use idgate::db::{AnyConnection, Database, DbError, StoreError, Unguarded};
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

/// A sign-in of `email` with `subject` and token `token`, API accounts `barred`.
fn common(email: &str, subject: Option<&str>, token: &str, barred: &[String]) -> SignInTogether {
    let email = Email::parse(email).unwrap_or_else(|e| panic!("{e}"));
    let mut event = SecurityEvent::new(Event::Login, Outcome::Success, format!("incident {token}"));
    event.provider = Some("mock".into());
    SignInTogether {
        email: email.normalized().to_string(),
        issuer: ISSUER.into(),
        subject: subject.map(str::to_string),
        providers: vec!["mock".to_string()],
        barred_usernames: barred.to_vec(),
        fingerprint: token.into(),
        usable_until: 5_000,
        id_hash: format!("session of {token}"),
        provider: "mock".into(),
        now: 1_000,
        expires_at: 4_600,
        sid: None,
        id_token: None,
        event,
    }
}

/// The sign-ins in one statement: for each, the member found (its id) and whether the session
/// was stored.
fn together(
    conn: &mut diesel::PgConnection,
    sign_ins: &[SignInTogether],
) -> Vec<Option<(i64, bool)>> {
    let sign_ins: Vec<&SignInTogether> = sign_ins.iter().collect();
    let parts = sign_in_together(conn, &sign_ins).unwrap_or_else(|e| panic!("{e}"));
    parts
        .into_iter()
        .zip(&sign_ins)
        .map(|(part, sign_in)| {
            assert_eq!(part.fingerprint, sign_in.fingerprint, "answers in order");
            part.found.map(|(found, stored)| (found.member.id, stored))
        })
        .collect()
}

/// One sign-in alone, as [`together`].
fn sign_in(
    conn: &mut diesel::PgConnection,
    email: &str,
    subject: Option<&str>,
    token: &str,
    barred: &[String],
) -> Option<(i64, bool)> {
    let mut answers = together(conn, &[common(email, subject, token, barred)]);
    assert_eq!(answers.len(), 1);
    answers.pop().flatten()
}

#[test]
fn a_sign_in_in_one_statement_stores_only_what_every_rule_allows() {
    let Some(db) = TestDb::postgres() else { return };
    let database = db.open();
    let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let conn: &mut AnyConnection = &mut pooled;
    let mut add = |name: &str, username: &str, status, subject: Option<&str>| {
        let id = member(conn, &format!("{name}@example.org"), username, status);
        if let Some(subject) = subject {
            let bound = members::bind_subject(conn, id, ISSUER, "mock", subject, 1);
            assert!(bound.unwrap_or_else(|e| panic!("{e}")));
        }
        id
    };
    use MemberStatus::{Activated, Disabled, SetPassword, Unactivated};
    let ana = add("ana", "ana", Activated, Some("sub-ana"));
    let set = add("set", "set", SetPassword, Some("sub-set"));
    let off = add("off", "off", Disabled, Some("sub-off"));
    let new = add("new", "new", Unactivated, Some("sub-new"));
    let locked = add("locked", "locked", Activated, Some("sub-locked"));
    let robot = add("robot", "Robot", Activated, Some("sub-robot"));
    let unbound = add("unbound", "unbound", Activated, None);
    let legacy = add("legacy", "legacy", Activated, Some("sub-legacy"));
    let twin = add("twin", "twin", Activated, Some("sub-twin"));
    let other = add("other", "other", Activated, None);
    let email = Email::parse("locked@example.org").unwrap_or_else(|e| panic!("{e}"));
    members::set_locked(conn, &email, true, 1).unwrap_or_else(|e| panic!("{e}"));
    let AnyConnection::Postgresql(c) = conn else {
        panic!("a PostgreSQL connection")
    };
    // Bindings stored by provider and not carried over to their issuer: the member's to
    // another subject; another member's to the twin's subject.
    c.batch_execute(&format!(
        "INSERT INTO member_bindings (member_id, provider, subject, created_at) \
         VALUES ({legacy}, 'mock', 'sub-elsewhere', 1), ({other}, 'mock', 'sub-twin', 1)"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let none: Vec<String> = Vec::new();
    let robots = vec!["robot".to_string()];

    // Every rule passes: the token's row, the session and the event, all of the member found.
    let ana_t1 = sign_in(c, "Ana@Example.org", Some("sub-ana"), "t1", &none);
    assert_eq!(ana_t1, Some((ana, true)));
    let set_t2 = sign_in(c, "set@example.org", Some("sub-set"), "t2", &robots);
    assert_eq!(set_t2, Some((set, true)));
    let stored = [
        format!(
            "SELECT count(*) FROM sessions WHERE id_hash = 'session of t1' AND member_id = {ana} AND subject = 'sub-ana'"
        ),
        format!(
            "SELECT count(*) FROM security_log WHERE incident = 'incident t1' AND member_id = {ana} AND outcome = 'success'"
        ),
        "SELECT count(*) FROM used_tokens WHERE token_hash = 't1'".to_string(),
    ];
    for query in stored {
        assert_eq!(count(c, &query), 1, "{query}");
    }

    // Each rule the row decides, alone: the member is found, nothing is written.
    let refused = [
        (
            "ana",
            Some("sub-ana"),
            "t1",
            &none,
            ana,
            "the token used before",
        ),
        (
            "ana",
            Some("sub-other"),
            "t3",
            &none,
            ana,
            "another subject",
        ),
        ("ana", None, "t4", &none, ana, "no subject"),
        ("off", Some("sub-off"), "t5", &none, off, "disabled"),
        ("new", Some("sub-new"), "t6", &none, new, "unactivated"),
        ("locked", Some("sub-locked"), "t7", &none, locked, "locked"),
        (
            "robot",
            Some("sub-robot"),
            "t8",
            &robots,
            robot,
            "an API account",
        ),
        (
            "unbound",
            Some("sub-unbound"),
            "t9",
            &none,
            unbound,
            "a first binding",
        ),
        (
            "legacy",
            Some("sub-legacy"),
            "t10",
            &none,
            legacy,
            "a binding not carried over",
        ),
        (
            "twin",
            Some("sub-twin"),
            "t11",
            &none,
            twin,
            "the subject another member's",
        ),
    ];
    for (name, subject, token, barred, id, case) in refused {
        let answer = sign_in(c, &format!("{name}@example.org"), subject, token, barred);
        assert_eq!(answer, Some((id, false)), "{case}");
    }
    let nobody = sign_in(c, "nobody@example.org", Some("sub"), "t12", &none);
    assert_eq!(nobody, None);
    for table in ["sessions", "security_log", "used_tokens"] {
        assert_eq!(
            count(c, &format!("SELECT count(*) FROM {table}")),
            2,
            "{table}"
        );
    }

    // The API account from one of its addresses (nobody barred) signs in.
    let robot_t8 = sign_in(c, "robot@example.org", Some("sub-robot"), "t8", &none);
    assert_eq!(robot_t8, Some((robot, true)));
}

/// Signs ana in (on a connection of its own) with `token` while `hold`, run in a transaction on
/// another connection, keeps rows the sign-in needs; then ends that transaction with `end`.
fn sign_in_while(
    url: &str,
    hold: &str,
    end: &str,
    token: &str,
    barred: &[String],
) -> Option<(i64, bool)> {
    let connect = || diesel::PgConnection::establish(url).unwrap_or_else(|e| panic!("{e}"));
    let mut holder = connect();
    holder
        .batch_execute(&format!("BEGIN; {hold}"))
        .unwrap_or_else(|e| panic!("{hold}: {e}"));
    let (token, barred) = (token.to_string(), barred.to_vec());
    let mut signer = connect();
    let signing = std::thread::spawn(move || {
        sign_in(
            &mut signer,
            "ana@example.org",
            Some("sub-ana"),
            &token,
            &barred,
        )
    });
    // Once the sign-in waits for the held rows (a wait the server reports), `end` lets it go.
    let mut watcher = connect();
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&mut watcher, waiting) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sign-in never waited for {hold}"
        );
        std::thread::yield_now();
    }
    holder
        .batch_execute(end)
        .unwrap_or_else(|e| panic!("{end}: {e}"));
    signing
        .join()
        .unwrap_or_else(|_| panic!("the sign-in panicked"))
}

#[test]
fn a_sign_in_in_one_statement_sees_what_a_concurrent_change_commits() {
    let Some(db) = TestDb::postgres() else { return };
    let (database, ana) = with_ana(&db);
    let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let conn: &mut AnyConnection = &mut pooled;
    let none: Vec<String> = Vec::new();
    let robots = vec!["robot".to_string()];
    let url = &db.url;
    let set = |what: &str| format!("UPDATE members SET {what} WHERE id = {ana}");
    let (lock, unlock) = (set("locked = true"), set("locked = false"));
    let rename = set("username = 'Robot', username_normalized = 'robot'");
    let unbind = format!("DELETE FROM identity_bindings WHERE member_id = {ana}");
    let claim = |token: &str| {
        format!("INSERT INTO used_tokens (token_hash, expires_at) VALUES ('{token}', 5000)")
    };

    // A change rolled back: the member as it was.
    assert_eq!(
        sign_in_while(url, &lock, "ROLLBACK", "c1", &none),
        Some((ana, true))
    );
    // Committed meanwhile: a lock, an unlock, a rename into an API account, an unbind are seen.
    assert_eq!(
        sign_in_while(url, &lock, "COMMIT", "c2", &none),
        Some((ana, false))
    );
    assert_eq!(
        sign_in_while(url, &unlock, "COMMIT", "c3", &none),
        Some((ana, true))
    );
    assert_eq!(
        sign_in_while(url, &rename, "COMMIT", "c4", &robots),
        Some((ana, false))
    );
    assert_eq!(
        sign_in_while(url, &unbind, "COMMIT", "c5", &none),
        Some((ana, false))
    );
    let rebound = members::bind_subject(conn, ana, ISSUER, "mock", "sub-ana", 1);
    assert!(rebound.unwrap_or_else(|e| panic!("{e}")));
    // The token's row stored by another transaction: free if it rolls back, used if it commits.
    assert_eq!(
        sign_in_while(url, &claim("c6"), "ROLLBACK", "c6", &none),
        Some((ana, true))
    );
    assert_eq!(
        sign_in_while(url, &claim("c7"), "COMMIT", "c7", &none),
        Some((ana, false))
    );
    let AnyConnection::Postgresql(c) = conn else {
        panic!("a PostgreSQL connection")
    };
    for table in ["sessions", "security_log"] {
        assert_eq!(
            count(c, &format!("SELECT count(*) FROM {table}")),
            3,
            "{table}"
        );
    }
}

/// A session stored by the statement, its replay-guard row and its event are the rows that a
/// sign-in step by step stores from the same token and session ([`claim_token_for_session`]),
/// column for column, the provider's session id and the kept ID token included.
#[test]
fn the_statement_stores_the_rows_a_sign_in_step_by_step_stores() {
    let Some(db) = TestDb::postgres() else { return };
    let (database, ana) = with_ana(&db);
    let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let conn: &mut AnyConnection = &mut pooled;
    let session = |id_hash| NewSession {
        id_hash,
        provider: "mock",
        now: 1_000,
        expires_at: 4_600,
        from_token: Some(FromToken {
            issuer: ISSUER,
            subject: Some("sub-ana"),
            sid: Some("sid-1"),
            id_token: Some("the ID token"),
        }),
    };
    let token = |fingerprint| ClaimedToken {
        fingerprint,
        usable_until: 5_000,
    };
    let mut event = SecurityEvent::new(Event::Login, Outcome::Success, "incident".into());
    event.provider = Some("mock".into());
    event.email = Some("Ana@example.org".into());
    event.member_id = Some(ana);
    event.client_ip = Some("192.0.2.1".into());
    event.user_agent = Some("a browser".into());
    event.email_source = Some("userinfo");

    let step = claim_token_for_session(conn, token("step"), ana, &session("step"), &event);
    assert_eq!(step.unwrap_or_else(|e| panic!("{e}")), TokenUse::First);
    let email = Email::parse("ana@example.org").unwrap_or_else(|e| panic!("{e}"));
    let providers = vec!["mock".to_string()];
    let who = SignInIdentity {
        email: &email,
        issuer: ISSUER,
        subject: Some("sub-ana"),
        providers: &providers,
    };
    let joined = SignInTogether::new(who, token("joined"), &session("joined"), Vec::new(), event);
    let AnyConnection::Postgresql(c) = conn else {
        panic!("a PostgreSQL connection")
    };
    assert_eq!(together(c, &[joined]), [Some((ana, true))]);

    for (table, columns) in [
        (
            "sessions",
            "member_id, provider, created_at, last_seen_at, expires_at, issuer, subject, sid, id_token",
        ),
        ("used_tokens", "expires_at"),
        (
            "security_log",
            "at, event, outcome, reason, provider, email, member_id, client_ip, user_agent, \
             incident, email_source",
        ),
    ] {
        let rows = format!("SELECT count(*) FROM {table}");
        assert_eq!(count(c, &rows), 2, "{table}");
        let alike = format!("SELECT count(DISTINCT ({columns})) FROM {table}");
        assert_eq!(count(c, &alike), 1, "{table}: the two rows differ");
    }
    let with_sid =
        "SELECT count(*) FROM sessions WHERE sid = 'sid-1' AND id_token = 'the ID token'";
    assert_eq!(count(c, with_sid), 2);
}

#[test]
fn sign_ins_together_are_each_decided_as_alone_and_logged_in_order() {
    let Some(db) = TestDb::postgres() else { return };
    let database = db.open();
    let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let conn: &mut AnyConnection = &mut pooled;
    let mut add = |name: &str, subject: &str| {
        let id = member(
            conn,
            &format!("{name}@example.org"),
            name,
            MemberStatus::Activated,
        );
        let bound = members::bind_subject(conn, id, ISSUER, "mock", subject, 1);
        assert!(bound.unwrap_or_else(|e| panic!("{e}")));
        id
    };
    let ana = add("ana", "sub-ana");
    let bob = add("bob", "sub-bob");
    let AnyConnection::Postgresql(c) = conn else {
        panic!("a PostgreSQL connection")
    };
    let none: Vec<String> = Vec::new();
    let used = sign_in(c, "bob@example.org", Some("sub-bob"), "used", &none);
    assert_eq!(used, Some((bob, true)));
    let sign_ins = [
        common("ana@example.org", Some("sub-ana"), "g1", &none),
        common("nobody@example.org", Some("sub-x"), "g2", &none),
        common("bob@example.org", Some("sub-bob"), "used", &none),
        common("ana@example.org", Some("sub-bob"), "g3", &none),
        common("bob@example.org", Some("sub-bob"), "g4", &none),
        common("ana@example.org", Some("sub-ana"), "g5", &none),
    ];
    let answers = together(c, &sign_ins);
    let expected = [
        Some((ana, true)),
        None,
        Some((bob, false)),
        Some((ana, false)),
        Some((bob, true)),
        Some((ana, true)),
    ];
    assert_eq!(answers, expected);
    // Sessions for the three that passed; their events in the order of the sign-ins.
    let logged: Vec<String> = diesel::select(diesel::dsl::sql::<
        diesel::sql_types::Array<diesel::sql_types::Text>,
    >(
        "(SELECT array_agg(incident ORDER BY id) FROM security_log)",
    ))
    .get_result(c)
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        logged,
        ["incident used", "incident g1", "incident g4", "incident g5"]
    );
    for (token, member) in [("g1", ana), ("g4", bob), ("g5", ana)] {
        let query = format!(
            "SELECT count(*) FROM sessions WHERE id_hash = 'session of {token}' AND member_id = {member}"
        );
        assert_eq!(count(c, &query), 1, "{token}");
    }
    assert_eq!(count(c, "SELECT count(*) FROM sessions"), 4);

    // Two sign-ins with one token, or that do not go together, are refused as a whole.
    let twice = [
        common("ana@example.org", Some("sub-ana"), "g6", &none),
        common("bob@example.org", Some("sub-bob"), "g6", &none),
    ];
    let robots = vec!["robot".to_string()];
    let apart = [
        common("ana@example.org", Some("sub-ana"), "g7", &none),
        common("bob@example.org", Some("sub-bob"), "g8", &robots),
    ];
    for refused in [&twice[..], &apart[..]] {
        let refused: Vec<&SignInTogether> = refused.iter().collect();
        assert!(sign_in_together(c, &refused).is_err());
    }
    assert_eq!(count(c, "SELECT count(*) FROM sessions"), 4);
}

/// What the writer gave a common sign-in's work: its part of the statement of sign-ins together
/// (the member's id and whether the session was stored), or why that failed; `None` when it
/// was not made for this run.
type Part = Option<Result<Option<(i64, bool)>, String>>;

/// Queues a common sign-in whose work answers with its part, after running `then`.
fn queue_sign_in(
    database: &Database,
    sign_in: SignInTogether,
    mut then: impl FnMut(&mut AnyConnection, bool) -> Result<(), Unguarded<StoreError>> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(bool, Part), StoreError>> {
    let database = database.clone();
    tokio::spawn(async move {
        database
            .write_sign_in(Some(sign_in), move |conn, run| {
                then(conn, run.guarded)?;
                let part = run.joined.map(|part| {
                    part.map(|part| part.found.map(|(found, stored)| (found.member.id, stored)))
                });
                Ok((run.guarded, part))
            })
            .await
    })
}

/// Ana, bound at the issuer, on a fresh PostgreSQL database.
fn with_ana(db: &TestDb) -> (Database, i64) {
    let database = db.open();
    let ana = {
        let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
        let conn: &mut AnyConnection = &mut pooled;
        let ana = member(conn, "ana@example.org", "ana", MemberStatus::Activated);
        let bound = members::bind_subject(conn, ana, ISSUER, "mock", "sub-ana", 1);
        assert!(bound.unwrap_or_else(|e| panic!("{e}")));
        ana
    };
    (database, ana)
}

/// Sign-ins queued on either side of another write are made in two statements, the second
/// after that write: it sees what the write did (here: ana locked).
#[tokio::test]
async fn a_write_between_sign_ins_ends_their_statement() {
    let Some(db) = TestDb::postgres() else { return };
    let (database, ana) = with_ana(&db);
    let none: Vec<String> = Vec::new();
    let (held, release) = crate::writer::hold_the_writer(&database).await;
    let before = queue_sign_in(
        &database,
        common("ana@example.org", Some("sub-ana"), "w1", &none),
        |_, _| Ok(()),
    );
    crate::writer::queued(&database, 1).await;
    let lock = {
        let database = database.clone();
        tokio::spawn(async move {
            database
                .write(move |conn| {
                    let lock = format!("UPDATE members SET locked = true WHERE id = {ana}");
                    let AnyConnection::Postgresql(c) = conn else {
                        panic!("a PostgreSQL connection")
                    };
                    c.batch_execute(&lock)
                        .map_err(|e| StoreError::Db(DbError::Query(e)))
                })
                .await
        })
    };
    crate::writer::queued(&database, 2).await;
    let after = queue_sign_in(
        &database,
        common("ana@example.org", Some("sub-ana"), "w2", &none),
        |_, _| Ok(()),
    );
    crate::writer::queued(&database, 3).await;
    let answers = crate::writer::release_then_answers(held, release, [before, after]).await;
    lock.await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let answers: Vec<(bool, Part)> = answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(answers[0], (false, Some(Ok(Some((ana, true))))));
    assert_eq!(
        answers[1],
        (false, Some(Ok(Some((ana, false))))),
        "the lock is seen"
    );
    // Nothing was stored for the sign-in after the lock.
    let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let AnyConnection::Postgresql(c) = &mut *pooled else {
        panic!("a PostgreSQL connection")
    };
    assert_eq!(count(c, "SELECT count(*) FROM sessions"), 1);
    assert_eq!(crate::writer::stored(&database), ["first", "w1"]);
}

/// A batch whose first run fails is run again, each sign-in on its own: a sign-in that had
/// been given its part of a statement, but had not run when the batch failed, is not told
/// that its session is stored (the rollback undid it).
#[tokio::test]
async fn a_sign_in_run_again_goes_on_its_own() {
    let Some(db) = TestDb::postgres() else { return };
    let (database, ana) = with_ana(&db);
    let none: Vec<String> = Vec::new();
    let counters = database.writer_counters();
    let (held, release) = crate::writer::hold_the_writer(&database).await;
    let failing = queue_sign_in(
        &database,
        common("ana@example.org", Some("sub-ana"), "r1", &none),
        |_, guarded| {
            if guarded {
                Ok(())
            } else {
                Err(Unguarded::Store(StoreError::Db(DbError::Unavailable(
                    "failed on purpose".into(),
                ))))
            }
        },
    );
    crate::writer::queued(&database, 1).await;
    let later = queue_sign_in(
        &database,
        common("ana@example.org", Some("sub-ana"), "r2", &none),
        |_, _| Ok(()),
    );
    crate::writer::queued(&database, 2).await;
    let answers = crate::writer::release_then_answers(held, release, [failing, later]).await;
    let answers: Vec<(bool, Part)> = answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(answers, [(true, None), (true, None)]);
    assert_eq!(counters.retries.get(), 1);
    // The statement's sessions were rolled back with the first run.
    let mut pooled = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let AnyConnection::Postgresql(c) = &mut *pooled else {
        panic!("a PostgreSQL connection")
    };
    assert_eq!(
        count(
            c,
            &format!("SELECT count(*) FROM sessions WHERE member_id = {ana}")
        ),
        0
    );
    assert_eq!(crate::writer::stored(&database), ["first"]);
}
