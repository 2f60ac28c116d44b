//! `idgate members …` round trips through the real binary, on both backends.

use crate::helpers::{TestDb, idgate, on_both_backends, stderr, stdout};

fn list(db: &TestDb) -> Vec<serde_json::Value> {
    let output = idgate(db.dir.path(), &db.url, &["members", "list", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn ok(db: &TestDb, args: &[&str]) -> String {
    let output = idgate(db.dir.path(), &db.url, args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

fn fails(db: &TestDb, args: &[&str]) -> String {
    let output = idgate(db.dir.path(), &db.url, args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?}: {}",
        stdout(&output)
    );
    stderr(&output)
}

fn add_list_lock_unlock_remove(db: &TestDb) {
    ok(
        db,
        &[
            "members",
            "add",
            "--email",
            "Jane.Doe@Example.org",
            "--firstname",
            "Jane",
            "--surname",
            "Doe",
            "--status",
            "set-password",
            "--admin",
        ],
    );
    let members = list(db);
    assert_eq!(members.len(), 1);
    let jane = &members[0];
    assert_eq!(jane["email"], "Jane.Doe@Example.org");
    assert_eq!(jane["username"], "jane.doe@example.org");
    assert_eq!(jane["status"], "set-password");
    assert_eq!(jane["admin"], true);
    assert_eq!(jane["locked"], false);

    // Emails match case-insensitively.
    assert!(
        fails(db, &["members", "add", "--email", "jane.doe@EXAMPLE.org"])
            .contains("already exists")
    );
    ok(db, &["members", "lock", "JANE.DOE@example.org"]);
    assert_eq!(list(db)[0]["locked"], true);
    ok(db, &["members", "unlock", "jane.doe@example.org"]);
    assert_eq!(list(db)[0]["locked"], false);
    assert!(fails(db, &["members", "lock", "nobody@example.org"]).contains("no member"));
    ok(db, &["members", "remove", "jane.doe@example.org"]);
    assert!(list(db).is_empty());
    assert!(fails(db, &["members", "remove", "jane.doe@example.org"]).contains("no member"));
    let log = ok(db, &["audit", "--json"]);
    for event in [
        "member_added",
        "member_locked",
        "member_unlocked",
        "member_removed",
    ] {
        assert!(log.contains(event), "{event}: {log}");
    }
}

fn a_taken_username_and_a_bad_email_are_refused(db: &TestDb) {
    ok(
        db,
        &[
            "members",
            "add",
            "--email",
            "a@example.org",
            "--username",
            "Bob",
        ],
    );
    assert!(
        fails(
            db,
            &[
                "members",
                "add",
                "--email",
                "b@example.org",
                "--username",
                "bob"
            ]
        )
        .contains("already taken")
    );
    assert!(fails(db, &["members", "add", "--email", "not an email"]).contains("white space"));
    assert_eq!(list(db).len(), 1);
}

fn unbind_clears_one_provider_or_all(db: &TestDb) {
    ok(db, &["members", "add", "--email", "jane@example.org"]);
    {
        let database = db.open();
        let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
        let id = list(db)[0]["id"].as_i64().unwrap_or_default();
        for (provider, sub) in [("entrypage", "sub-1"), ("google", "sub-2")] {
            let issuer = format!("https://{provider}.example");
            let bound = idgate::db::members::bind_subject(&mut conn, id, &issuer, provider, sub, 1)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(bound);
        }
    }
    assert_eq!(list(db)[0]["bindings"].as_array().map(Vec::len), Some(2));
    let out = ok(
        db,
        &[
            "members",
            "unbind",
            "jane@example.org",
            "--provider",
            "google",
        ],
    );
    assert!(out.contains("removed 1 binding"));
    let bindings = list(db)[0]["bindings"].clone();
    assert_eq!(bindings[0]["provider"], "entrypage");
    assert_eq!(bindings.as_array().map(Vec::len), Some(1));
    ok(db, &["members", "unbind", "jane@example.org"]);
    assert_eq!(list(db)[0]["bindings"].as_array().map(Vec::len), Some(0));
    assert!(ok(db, &["audit", "--json"]).contains("member_unbound"));
}

fn import_adds_and_updates_members(db: &TestDb) {
    ok(
        db,
        &[
            "members",
            "add",
            "--email",
            "jane@example.org",
            "--firstname",
            "J",
        ],
    );
    let csv = db.dir.path().join("members.csv");
    std::fs::write(
        &csv,
        "email,username,firstname,surname,status\nJANE@example.org,,Jane,Doe,disabled\nbob@example.org,bob,Bob,Roe,\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = ok(db, &["members", "import", csv.to_str().unwrap_or_default()]);
    assert!(out.contains("1 added, 1 updated"), "{out}");
    let members = list(db);
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["firstname"], "Jane");
    assert_eq!(members[0]["status"], "disabled");
    assert_eq!(members[0]["username"], "jane@example.org");
    assert_eq!(members[1]["username"], "bob");
    assert_eq!(members[1]["status"], "activated");
    assert!(ok(db, &["audit", "--json"]).contains("members_imported"));
}

fn a_bad_row_imports_nothing_and_names_its_line(db: &TestDb) {
    let csv = db.dir.path().join("members.csv");
    std::fs::write(
        &csv,
        "email,username,firstname,surname,status\ngood@example.org,,,,\nbad@@example.org,,,,\nok@example.org,,,,frozen\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = csv.to_str().unwrap_or_default().to_string();
    let err = fails(db, &["members", "import", &path]);
    assert!(err.contains("nothing was imported; 2 bad row(s)"), "{err}");
    assert!(
        err.contains(&format!("{path}:3: `bad@@example.org`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:4: invalid status `frozen`")),
        "{err}"
    );
    assert!(list(db).is_empty());
}

fn a_username_conflict_with_the_database_imports_nothing(db: &TestDb) {
    ok(
        db,
        &[
            "members",
            "add",
            "--email",
            "holder@example.org",
            "--username",
            "taken",
        ],
    );
    let csv = db.dir.path().join("members.csv");
    std::fs::write(
        &csv,
        "email,username,firstname,surname,status\nnew@example.org,,,,\nother@example.org,Taken,,,\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = csv.to_str().unwrap_or_default().to_string();
    let err = fails(db, &["members", "import", &path]);
    assert!(
        err.contains(&format!(
            "{path}:3: the username Taken is already taken by holder@example.org"
        )),
        "{err}"
    );
    assert_eq!(
        list(db).len(),
        1,
        "the good row must not have been imported either"
    );
}

fn the_text_listing_shows_members_in_columns(db: &TestDb) {
    ok(
        db,
        &[
            "members",
            "add",
            "--email",
            "jane@example.org",
            "--firstname",
            "Jane",
            "--admin",
        ],
    );
    let out = ok(db, &["members", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID"));
    assert!(
        lines[1].contains("jane@example.org")
            && lines[1].contains("activated")
            && lines[1].contains("admin")
    );
}

/// An administrator's action whose row of the security log cannot be written is not done: the
/// command fails and the database is as it was.
fn an_action_that_cannot_be_logged_is_not_done(db: &TestDb) {
    use diesel::connection::SimpleConnection as _;
    ok(db, &["members", "add", "--email", "kim@example.org"]);
    // From here on the security log refuses every row.
    let refuse = if db.url.starts_with("postgres") {
        "CREATE FUNCTION refuse_rows() RETURNS trigger AS $$ \
         BEGIN RAISE EXCEPTION 'the security log refuses'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse BEFORE INSERT ON security_log \
         FOR EACH ROW EXECUTE FUNCTION refuse_rows();"
    } else {
        "CREATE TRIGGER refuse BEFORE INSERT ON security_log \
         BEGIN SELECT RAISE(ABORT, 'the security log refuses'); END;"
    };
    let database = db.open();
    let mut conn = database.conn().unwrap_or_else(|e| panic!("{e}"));
    conn.batch_execute(refuse).unwrap_or_else(|e| panic!("{e}"));
    for action in [
        &["members", "add", "--email", "lee@example.org"][..],
        &["members", "lock", "kim@example.org"],
        &["members", "set", "kim@example.org", "--surname", "Other"],
        &["members", "remove", "kim@example.org"],
        &["sessions", "revoke", "--member", "kim@example.org"],
    ] {
        let why = fails(db, action);
        assert!(
            why.contains("the security log refuses"),
            "{action:?}: {why}"
        );
    }
    let members = list(db);
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["email"], "kim@example.org");
    assert_eq!(members[0]["locked"], false);
    assert_ne!(members[0]["surname"], "Other");
}

on_both_backends!(
    an_action_that_cannot_be_logged_is_not_done,
    set_changes_a_member_in_place,
    a_closed_pipe_ends_a_listing_quietly,
    add_list_lock_unlock_remove,
    a_taken_username_and_a_bad_email_are_refused,
    unbind_clears_one_provider_or_all,
    import_adds_and_updates_members,
    a_bad_row_imports_nothing_and_names_its_line,
    a_username_conflict_with_the_database_imports_nothing,
    the_text_listing_shows_members_in_columns,
);

#[test]
fn an_unreachable_postgres_server_reports_the_real_error() {
    let dir = crate::helpers::temp_dir();
    let output = idgate(
        dir.path(),
        "postgres://idgate:hunter2@127.0.0.1:1/idgate",
        &["members", "list"],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("cannot connect to postgres://idgate:***@127.0.0.1:1/idgate"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
    assert!(
        !dir.path().join("idgate.db").exists(),
        "no SQLite file may appear as a fallback"
    );
}

#[test]
fn an_unknown_database_scheme_is_refused() {
    let dir = crate::helpers::temp_dir();
    let output = idgate(
        dir.path(),
        "mysql://root@127.0.0.1/test",
        &["members", "list"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unsupported database URL"));
}

#[test]
fn a_command_in_the_wrong_directory_creates_no_database() {
    let dir = crate::helpers::temp_dir();
    for args in [
        &["members", "add", "--email", "ana@example.org"][..],
        &["audit"][..],
        &["sessions", "list"][..],
    ] {
        let output = crate::helpers::idgate_command(dir.path())
            .args(args)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains(
                "no database at ./idgate.db (idgate serve creates it; or pass --database)"
            ),
            "{}",
            stderr(&output)
        );
        assert!(!dir.path().join("idgate.db").exists(), "{args:?}");
    }
    // Given explicitly, it is created as before.
    let made = idgate(
        dir.path(),
        "sqlite://new.db",
        &["members", "add", "--email", "ana@example.org"],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(dir.path().join("new.db").exists());
}

#[test]
fn a_bare_path_is_answered_with_the_url_to_write() {
    let dir = crate::helpers::temp_dir();
    let output = idgate(dir.path(), "idgate.db", &["members", "list"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("`idgate.db`") && message.contains("sqlite://idgate.db"),
        "{message}"
    );
}

fn set_changes_a_member_in_place(db: &TestDb) {
    ok(db, &["members", "add", "--email", "ana@example.org"]);
    let before = list(db)[0].clone();
    assert_eq!(before["admin"], false);
    ok(
        db,
        &[
            "members",
            "set",
            "ana@example.org",
            "--admin",
            "--firstname",
            "Ana",
            "--status",
            "set-password",
        ],
    );
    let after = list(db)[0].clone();
    assert_eq!(after["id"], before["id"], "the same id");
    assert_eq!(after["admin"], true);
    assert_eq!(after["firstname"], "Ana");
    assert_eq!(after["status"], "set-password");
    ok(db, &["members", "set", "ana@example.org", "--no-admin"]);
    assert_eq!(list(db)[0]["admin"], false);
    assert!(fails(db, &["members", "set", "nobody@example.org", "--admin"]).contains("no member"));
    assert!(
        fails(
            db,
            &[
                "members",
                "set",
                "ana@example.org",
                "--surname",
                "Lima\u{202e}"
            ]
        )
        .contains("control")
    );
    let log = ok(db, &["audit", "--json"]);
    for event in ["member_added", "member_changed"] {
        assert!(log.contains(event), "{log}");
    }
}

fn a_closed_pipe_ends_a_listing_quietly(db: &TestDb) {
    let csv = db.dir.path().join("many.csv");
    let rows: String = (0..3000)
        .map(|i| format!("member{i}@example.org,,,,\n"))
        .collect();
    std::fs::write(
        &csv,
        format!("email,username,firstname,surname,status\n{rows}"),
    )
    .expect("csv");
    ok(db, &["members", "import", csv.to_str().expect("path")]);
    let output = std::process::Command::new("bash")
        .current_dir(db.dir.path())
        .env_remove("DATABASE_URL")
        .args([
            "-c",
            &format!(
                "set -o pipefail; '{}' members list --json --database '{}' | head -1 > /dev/null",
                env!("CARGO_BIN_EXE_idgate"),
                db.url
            ),
        ])
        .output()
        .expect("bash");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
}
