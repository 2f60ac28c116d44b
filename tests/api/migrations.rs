//! The two migration folders say the same thing, and what they build is what `schema.rs`, which
//! every query is checked against at compile time, says: the same tables with the same columns.

use std::collections::{BTreeMap, BTreeSet};

use diesel::connection::Connection as _;
use diesel::pg::PgConnection;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;
use diesel::{QueryableByName, RunQueryDsl as _};

use crate::helpers::{TestDb, repo_path};

type Tables = BTreeMap<String, BTreeSet<String>>;

/// The migrations of one backend's folder, by name, each with the files it has.
fn migrations(backend: &str) -> BTreeMap<String, BTreeSet<String>> {
    std::fs::read_dir(repo_path(&format!("migrations/{backend}")))
        .expect("migration folder")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let files = std::fs::read_dir(&path)
                .expect("a migration is a folder")
                .map(|f| f.expect("file").file_name().to_string_lossy().into_owned())
                .collect();
            (
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                files,
            )
        })
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = migrations("sqlite");
    assert_eq!(sqlite, migrations("postgres"));
    assert!(!sqlite.is_empty());
    for (name, files) in &sqlite {
        let expected: BTreeSet<String> = ["down.sql", "up.sql"].map(String::from).into();
        assert_eq!(files, &expected, "{name}");
    }
}

/// The tables and columns `src/db/schema.rs` declares.
fn schema_rs() -> Tables {
    let text = std::fs::read_to_string(repo_path("src/db/schema.rs")).expect("schema.rs");
    let mut tables = Tables::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some((name, rest)) = line.split_once(" (")
            && rest.ends_with('{')
            && !name.contains(' ')
        {
            current = Some(name.to_string());
            tables.entry(name.to_string()).or_default();
        } else if let (Some(table), Some((column, _))) = (&current, line.split_once(" -> ")) {
            tables
                .entry(table.clone())
                .or_default()
                .insert(column.to_string());
        } else if line == "}" {
            current = None;
        }
    }
    tables
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

fn collect(columns: Vec<Column>) -> Tables {
    let mut tables = Tables::new();
    for c in columns {
        if c.table_name != "__diesel_schema_migrations" {
            tables
                .entry(c.table_name)
                .or_default()
                .insert(c.column_name);
        }
    }
    tables
}

/// The tables and columns a migrated database has.
fn migrated(db: &TestDb) -> Tables {
    drop(db.open());
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let mut conn = SqliteConnection::establish(path).expect("sqlite");
        collect(
            diesel::sql_query(
                "SELECT m.name AS table_name, p.name AS column_name \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
            )
            .load(&mut conn)
            .expect("columns"),
        )
    } else {
        let mut conn = PgConnection::establish(&db.url).expect("postgres");
        collect(
            diesel::sql_query(
                "SELECT table_name::text AS table_name, column_name::text AS column_name \
                 FROM information_schema.columns WHERE table_schema = 'public'",
            )
            .load(&mut conn)
            .expect("columns"),
        )
    }
}

fn the_migrated_tables_are_those_of_schema_rs(db: &TestDb) {
    let expected = schema_rs();
    assert!(expected.len() >= 5, "schema.rs was read: {expected:?}");
    assert_eq!(migrated(db), expected);
}

crate::helpers::on_both_backends!(the_migrated_tables_are_those_of_schema_rs);
