use crate::helpers::{fixture, idgate_command, repo_path, stdout};

fn check(file: &std::path::Path) -> std::process::Output {
    idgate_command(&repo_path(""))
        .env("IDGATE_TEST_SECRET", "s3cret")
        .arg("check-config")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn check_config_accepts_the_example_and_the_valid_fixture() {
    for file in [repo_path("identity.yaml"), fixture("valid.yaml")] {
        let output = check(&file);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        assert!(stdout(&output).contains(": ok ("));
    }
}

#[test]
fn check_config_prints_every_problem_with_file_line_and_column_and_exits_1() {
    let file = fixture("many-errors.yaml");
    let output = check(&file);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    let prefix = format!("{}:", file.display());
    for line in &lines {
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line}"));
        let mut parts = rest.splitn(3, ':');
        let line_no: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let column: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(line_no > 0 && column > 0, "{line}");
        assert!(parts.next().is_some_and(|m| m.starts_with(' ')), "{line}");
    }
    assert_eq!(
        lines[1],
        format!(
            "{prefix}2:1: unknown key `colour` (expected one of: defaultAuthentication, defaultProvider, portal, providers, domains, clients, properties)"
        )
    );
}

#[test]
fn check_config_reports_each_kind_of_broken_file() {
    let cases = [
        ("unknown-key.yaml", "6:5: unknown key `clientID`"),
        (
            "wrong-type.yaml",
            "3:12: title: expected a string, found a list",
        ),
        (
            "duplicate-id.yaml",
            "6:9: duplicate provider id `entrypage` (first at line 2)",
        ),
        (
            "unknown-provider.yaml",
            "1:18: no provider has the id `okta`",
        ),
        (
            "bad-client-id.yaml",
            "2:9: invalid client id `0123456789abcdeg`",
        ),
        (
            "bad-ip.yaml",
            "2:27: invalid IP address or network `192.168.0.300/24`",
        ),
        (
            "space-in-list.yaml",
            "2:24: spaces are not allowed in a comma list",
        ),
        (
            "insecure-authority.yaml",
            "4:19: `authorityUrl` must use https",
        ),
        (
            "missing-env.yaml",
            "6:19: environment variable `IDGATE_SURELY_UNSET_SECRET` is not set",
        ),
        ("syntax-error.yaml", "invalid YAML"),
    ];
    for (name, expected) in cases {
        let output = check(&fixture(name));
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert!(
            stdout(&output).contains(expected),
            "{name}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn check_config_on_a_missing_file_says_so() {
    let output = check(&repo_path("no-such-file.yaml"));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("cannot read the file"));
}
