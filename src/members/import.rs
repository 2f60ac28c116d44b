//! `idgate members import FILE.csv`: the whole file is checked first, and nothing is imported
//! if any row is bad.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use super::{Email, MemberStatus, check_text, check_username, normalize_username};

/// The required header, in this order.
pub const HEADER: [&str; 5] = ["email", "username", "firstname", "surname", "status"];

/// One valid row. Empty cells are `None`: defaults for a new member, unchanged for an existing one.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub email: Email,
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub status: Option<MemberStatus>,
}

/// A bad row and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// How many members an import added and updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    pub added: usize,
    pub updated: usize,
}

/// Reads and checks every row; all problems are returned, each with its line number.
pub fn parse_csv(input: impl Read) -> Result<Vec<ImportRow>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let mut errors = Vec::new();
    let header_ok = match reader.headers() {
        Ok(h) => h.iter().map(str::trim).eq(HEADER),
        Err(_) => false,
    };
    if !header_ok {
        return Err(vec![RowError {
            line: 1,
            message: format!("the header must be `{}`", HEADER.join(",")),
        }]);
    }
    let mut rows = Vec::new();
    let mut emails: HashMap<String, u64> = HashMap::new();
    let mut usernames: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths { len, .. } => {
                        format!("expected 5 fields, found {len}")
                    }
                    _ => e.to_string(),
                };
                errors.push(RowError { line, message });
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        match parse_row(line, &record) {
            Ok(row) => {
                let mut duplicate = |seen: &mut HashMap<String, u64>, key: String, what: &str| {
                    if let Some(first) = seen.get(&key) {
                        errors.push(RowError {
                            line,
                            message: format!("duplicate {what} (first at line {first})"),
                        });
                    } else {
                        seen.insert(key, line);
                    }
                };
                duplicate(&mut emails, row.email.normalized().to_string(), "email");
                if let Some(u) = &row.username {
                    duplicate(&mut usernames, normalize_username(u), "username");
                }
                rows.push(row);
            }
            Err(messages) => errors.extend(
                messages
                    .into_iter()
                    .map(|message| RowError { line, message }),
            ),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn parse_row(line: u64, record: &csv::StringRecord) -> Result<ImportRow, Vec<String>> {
    let cell = |i: usize| {
        record
            .get(i)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut problems = Vec::new();
    for (i, what) in [(0, "email"), (2, "first name"), (3, "surname")] {
        if let Some(text) = cell(i)
            && let Err(e) = check_text(what, &text)
        {
            problems.push(e);
        }
    }
    let email = match cell(0) {
        None => {
            problems.push("the email is missing".to_string());
            None
        }
        Some(e) if check_text("email", &e).is_err() => None,
        Some(e) => Email::parse(&e)
            .map_err(|err| problems.push(format!("`{e}`: {err}")))
            .ok(),
    };
    let username = cell(1);
    if let Some(u) = &username
        && let Err(e) = check_username(u)
    {
        problems.push(e);
    }
    let status = cell(4).and_then(|s| s.parse().map_err(|e| problems.push(e)).ok());
    match email {
        Some(email) if problems.is_empty() => Ok(ImportRow {
            line,
            email,
            username,
            firstname: cell(2),
            surname: cell(3),
            status,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(csv: &str) -> Vec<RowError> {
        match parse_csv(csv.as_bytes()) {
            Ok(rows) => unreachable!("expected errors, got {rows:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_good_file_gives_one_row_per_line() {
        let rows = parse_csv(
            "email,username,firstname,surname,status\njane@example.org,jane,Jane,Doe,activated\nbob@example.org,,,,\n"
                .as_bytes(),
        )
        .unwrap_or_default();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].status, Some(MemberStatus::Activated));
        assert_eq!(rows[1].username, None);
        assert_eq!(rows[1].status, None);
    }

    #[test]
    fn every_bad_row_is_named_by_its_line() {
        let e = errors(
            "email,username,firstname,surname,status\nok@example.org,,,,\nnot-an-email,,,,\nx@example.org,,,,enabled\ny@example.org,,\nOK@Example.org,,,,\n",
        );
        let lines: Vec<u64> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{e:?}");
        assert!(e[1].message.contains("invalid status `enabled`"));
        assert!(e[2].message.contains("expected 5 fields, found 3"));
        assert!(e[3].message.contains("duplicate email (first at line 2)"));
    }

    #[test]
    fn the_header_must_be_exact() {
        let e = errors("email,name,status\njane@example.org,Jane,activated\n");
        assert_eq!(e[0].line, 1);
        assert!(
            e[0].message
                .contains("email,username,firstname,surname,status")
        );
    }

    #[test]
    fn a_duplicate_username_in_the_file_is_refused() {
        let e = errors(
            "email,username,firstname,surname,status\na@example.org,Same,,,\nb@example.org,same,,,\n",
        );
        assert_eq!(
            e,
            [RowError {
                line: 3,
                message: "duplicate username (first at line 2)".into()
            }]
        );
    }
}
