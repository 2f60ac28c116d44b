//! The members store on both backends.

use idgate::db::members;
use idgate::members::{Email, MemberStatus, NewMember};

use crate::helpers::{TestDb, on_both_backends};

fn email(text: &str) -> Email {
    Email::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn new_member(address: &str) -> NewMember {
    NewMember {
        email: email(address),
        username: None,
        firstname: "F".into(),
        surname: "S".into(),
        status: MemberStatus::Activated,
        admin: false,
    }
}

fn members_are_found_by_email_whatever_its_case(db: &TestDb) {
    let database = db.open();
    let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let added = members::insert_member(&mut conn, &new_member("Ana@Bücher.Example"), 100)
        .unwrap_or_else(|e| panic!("{e}"));
    let found = members::find_member_by_email(&mut conn, &email("ana@xn--bcher-kva.EXAMPLE"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.map(|m| m.id), Some(added.id));
    let missing = members::find_member_by_email(&mut conn, &email("bob@example.org"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing, None);
}

fn one_binding_per_provider_and_one_member_per_subject(db: &TestDb) {
    let database = db.open();
    let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let a = members::insert_member(&mut conn, &new_member("a@example.org"), 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let b = members::insert_member(&mut conn, &new_member("b@example.org"), 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let bind = |conn: &mut _, id, provider, sub| {
        let issuer = format!("https://{provider}.example");
        members::bind_subject(conn, id, &issuer, provider, sub, 2).unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(bind(&mut conn, a.id, "entrypage", "sub-a"));
    assert!(
        !bind(&mut conn, a.id, "entrypage", "sub-other"),
        "one binding per issuer"
    );
    assert!(
        !bind(&mut conn, b.id, "entrypage", "sub-a"),
        "a subject binds one member"
    );
    assert!(
        bind(&mut conn, b.id, "google", "sub-a"),
        "subjects are per issuer"
    );
    assert!(bind(&mut conn, a.id, "google", "sub-g"));
    let bindings = members::bindings_of(&mut conn, a.id).unwrap_or_else(|e| panic!("{e}"));
    let providers: Vec<&str> = bindings.iter().map(|b| b.provider.as_str()).collect();
    assert_eq!(providers, ["entrypage", "google"]);
    assert_eq!(bindings[0].subject, "sub-a");
    // Removing a member removes their bindings, freeing the subject.
    assert!(members::remove_member(&mut conn, &email("a@example.org")).unwrap_or_default());
    assert!(bind(&mut conn, b.id, "entrypage", "sub-a"));
}

fn opening_twice_runs_the_migrations_once(db: &TestDb) {
    let first = db.open();
    {
        let mut conn = first.conn().unwrap_or_else(|e| panic!("{e}"));
        members::insert_member(&mut conn, &new_member("kept@example.org"), 1)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let second = db.open();
    let mut conn = second.conn().unwrap_or_else(|e| panic!("{e}"));
    let all = members::list_members(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 1);
    assert!(second.ping().is_ok());
}

/// Members an earlier build stored in a form the sign-in rules no longer give are reported at
/// start; one stored with a trailing dot in its domain is not, since it was compared without the
/// dot, as it still is.
fn members_stored_in_an_earlier_form_are_reported(db: &TestDb) {
    use diesel::prelude::*;
    use idgate::db::schema::members as table;
    let database = db.open();
    let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
    let mut stored = |written: &str, compared: &str| {
        let added = members::insert_member(&mut conn, &new_member(compared), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        diesel::update(table::table.find(added.id))
            .set((
                table::email.eq(written),
                table::email_normalized.eq(compared),
            ))
            .execute(&mut *conn)
            .unwrap_or_else(|e| panic!("{e}"));
        added.id
    };
    let folded = stored("Ägir@example.org", "ägir@example.org");
    stored("old@example.org.", "old@example.org");
    stored("new@example.org", "new@example.org");
    let reported = members::noncanonical_members(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reported, vec![(folded, "Ägir@example.org".to_string())]);
}

on_both_backends!(
    members_stored_in_an_earlier_form_are_reported,
    members_are_found_by_email_whatever_its_case,
    one_binding_per_provider_and_one_member_per_subject,
    opening_twice_runs_the_migrations_once,
);
