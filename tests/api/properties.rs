//! Property tests (bounded case counts): the parsers that read what anyone may send or an
//! operator may write never panic and keep their promises on any input.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate::members::Email;
use idgate::reason::Reason;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

proptest! {
    #![proptest_config(config())]

    /// Any text: a refusal or a token, never a panic.
    #[test]
    fn the_jws_parser_never_panics(raw in ".{0,300}") {
        let _ = idgate::oidc::token::parse(&raw);
    }

    /// Three parts of anything base64url: a refusal or a token, never a panic.
    #[test]
    fn the_jws_parser_takes_any_parts(
        header in proptest::collection::vec(any::<u8>(), 0..64),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        signature in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let raw = format!("{}.{}.{}", b64(&header), b64(&payload), b64(&signature));
        let _ = idgate::oidc::token::parse(&raw);
    }

    /// A token that parses still parses once its base64 is made non-canonical (padding,
    /// standard alphabet, whitespace): never.
    #[test]
    fn the_jws_parser_refuses_what_is_not_canonical(
        sub in "[a-z0-9]{1,20}",
        mangle in 0usize..4,
    ) {
        let header = b64(br#"{"alg":"RS256","kid":"k"}"#);
        let payload = b64(format!(r#"{{"sub":"{sub}","iss":"https://id.example.org"}}"#).as_bytes());
        let signature = b64(&[1, 2, 3, 4, 5]);
        let good = format!("{header}.{payload}.{signature}");
        prop_assert!(idgate::oidc::token::parse(&good).is_ok());
        let bad = match mangle {
            0 => format!("{header}=.{payload}.{signature}"),
            1 => format!("{header}.{payload}.{signature} "),
            2 => format!(" {header}.{payload}.{signature}"),
            _ => format!("{header}.{payload}.{}+/", &signature),
        };
        prop_assert_eq!(idgate::oidc::token::parse(&bad).err(), Some(Reason::Malformed));
    }

    /// Any text as a configuration: valid, or problems each at a position inside the file.
    #[test]
    fn the_configuration_reader_never_panics_and_points_inside_the_file(
        source in "(([a-zA-Z: \\-\\[\\]{},\"'#*&!|>]|\n|  ){0,200})",
    ) {
        match idgate::identity::validate(&source, &|_| None) {
            Ok(_) => {}
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                let lines = source.lines().count().max(1);
                for problem in problems {
                    prop_assert!(problem.pos.line >= 1 && problem.pos.line <= lines + 1,
                        "{:?} outside {} lines", problem.pos, lines);
                    prop_assert!(problem.pos.column >= 1);
                }
            }
        }
    }

    /// Any CSV: rows, or bad rows each named by a line of the file; never a panic.
    #[test]
    fn csv_import_never_panics_and_names_real_lines(
        rows in proptest::collection::vec("[a-z@.,\" ]{0,40}", 0..8),
    ) {
        let text = format!("email,username,firstname,surname,status\n{}", rows.join("\n"));
        let lines = text.lines().count();
        match idgate::members::import::parse_csv(text.as_bytes()) {
            Ok(parsed) => prop_assert!(parsed.len() < lines),
            Err(errors) => {
                for error in errors {
                    prop_assert!(error.line >= 1 && usize::try_from(error.line).unwrap_or(usize::MAX) <= lines + 1);
                }
            }
        }
    }

    /// Whatever `X-Forwarded-For` says: an untrusted peer is the client; behind a trusted
    /// proxy, the client is the peer or an address the header names.
    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies(
        peer in any::<[u8; 4]>(),
        values in proptest::collection::vec("[0-9a-f.:, ]{0,40}", 0..4),
        trusted in any::<bool>(),
    ) {
        let peer = IpAddr::from(peer);
        let forwarded: Vec<&str> = values.iter().map(String::as_str).collect();
        let proxies: Vec<ipnet::IpNet> = if trusted {
            vec![ipnet::IpNet::from(peer)]
        } else {
            Vec::new()
        };
        let client = idgate::access::client_ip(peer, &forwarded, &proxies);
        if !trusted {
            prop_assert_eq!(client, Some(peer));
        } else if let Some(client) = client {
            let named = forwarded
                .iter()
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .any(|a| a == client);
            prop_assert!(client == peer || named, "{client} from {forwarded:?}");
        }
    }

    /// Normalising twice changes nothing.
    #[test]
    fn email_normalisation_is_idempotent(text in "[A-Za-z0-9._+\\-]{1,20}@[A-Za-z0-9\\-]{1,15}\\.(org|example|de|xn--bcher-kva)") {
        if let Ok(email) = Email::parse(&text) {
            let again = Email::parse(email.normalized());
            prop_assert_eq!(again.as_ref().map(Email::normalized), Ok(email.normalized()));
        }
    }

    /// Two different canonical addresses never become one member's.
    #[test]
    fn distinct_canonical_addresses_stay_distinct(
        a in "[a-z0-9._\\-]{1,12}@[a-z0-9]{1,10}\\.(org|example)",
        b in "[a-z0-9._\\-]{1,12}@[a-z0-9]{1,10}\\.(org|example)",
        unicode_local in "[äöüßçé]{1,3}",
    ) {
        let normalized = |t: &str| Email::parse(t).map(|e| e.normalized().to_string());
        if a != b {
            prop_assert_ne!(normalized(&a), normalized(&b));
        }
        // Non-ASCII letters are never folded onto ASCII ones, or onto each other's case.
        let (local, domain) = a.split_once('@').unwrap_or((&a, "example.org"));
        let with_unicode = format!("{local}{unicode_local}@{domain}");
        let upper = format!("{local}{}@{domain}", unicode_local.to_uppercase());
        if upper != with_unicode {
            prop_assert_ne!(normalized(&with_unicode), normalized(&upper));
        }
    }
}
