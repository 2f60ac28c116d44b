//! One test per configuration rule, each asserting which error comes out and where.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/identity/", $name))
    };
}

fn env(name: &str) -> Option<String> {
    (name == "IDGATE_TEST_SECRET").then(|| "s3cret".to_string())
}

fn problems(source: &str) -> Vec<Problem> {
    match validate(source, &env) {
        Ok(config) => unreachable!("expected problems, got {config:?}"),
        Err(problems) => problems,
    }
}

fn at(line: usize, column: usize) -> Pos {
    Pos { line, column }
}

#[test]
fn the_valid_fixture_gives_typed_values() {
    let config = match validate(fixture!("valid.yaml"), &env) {
        Ok(config) => config,
        Err(p) => unreachable!("{p:?}"),
    };
    assert_eq!(config.providers.len(), 2);
    let entrypage = &config.providers[0];
    assert_eq!(entrypage.authority(), "https://id.example.org");
    assert_eq!(
        entrypage.client_secret.as_ref().map(Secret::expose),
        Some("s3cret")
    );
    assert_eq!(config.providers[1].client_id, "1234567890123456");
    assert_eq!(config.providers[1].authority(), "http://127.0.0.1:9000");
    assert_eq!(config.clients[0].id, "0123456789abcdef");
    assert_eq!(config.clients[0].website, "https://docs.example.org");
    assert!(config.client("0123456789ABCDEF").is_some());
    assert_eq!(
        config.properties.api_account_usernames,
        ["api-bot", "ci-robot"]
    );
    assert_eq!(config.properties.api_account_ips.len(), 3);
    assert_eq!(config.properties.trusted_proxies.len(), 2);
    assert_eq!(
        config.domains.default_authentication(),
        Authentication::Internal
    );
    assert!(
        config
            .domains
            .decide("example.org")
            .allows_provider("entrypage")
    );
    assert!(
        !config
            .domains
            .decide("example.org")
            .allows_provider("local-dev")
    );
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let config = validate(fixture!("valid.yaml"), &env).ok();
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"));
    assert!(debug.contains("redacted"));
}

#[test]
fn the_example_configuration_at_the_top_level_is_valid() {
    let example = include_str!("../../../identity.yaml");
    let result = validate(example, &|_| None);
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn an_unknown_key_is_reported_at_the_key() {
    let p = problems(fixture!("unknown-key.yaml"));
    assert!(p.iter().any(|p| p.pos == at(6, 5)
        && matches!(&p.error, ConfigError::UnknownKey { key, .. } if key == "clientID")));
    // The real key is then missing from the provider.
    assert!(
        p.iter()
            .any(|p| p.error == ConfigError::MissingKey("clientId") && p.pos == at(3, 5))
    );
}

#[test]
fn a_wrong_type_is_reported_at_the_value() {
    let p = problems(fixture!("wrong-type.yaml"));
    assert_eq!(
        p[0],
        Problem {
            pos: at(3, 12),
            error: ConfigError::WrongType {
                key: Some("title".into()),
                expected: "a string",
                found: "a list".into()
            }
        }
    );
    assert_eq!(p[1].pos, at(6, 27));
    assert!(matches!(
        p[1].error,
        ConfigError::WrongType {
            expected: "true or false",
            ..
        }
    ));
}

#[test]
fn a_key_without_a_value_is_reported_but_an_empty_section_holds_nothing() {
    let source = "providers:
  - id: entrypage
    title: Entrypage
    authorityUrl: https://id.example.org
    clientId:
    requireVerifiedEmail:
properties:
  sessionTimeout: ~
clients:
";
    let p = problems(source);
    assert_eq!(
        p,
        vec![
            Problem {
                pos: at(5, 13),
                error: ConfigError::NoValue("clientId".into()),
            },
            Problem {
                pos: at(6, 25),
                error: ConfigError::NoValue("requireVerifiedEmail".into()),
            },
            Problem {
                pos: at(8, 19),
                error: ConfigError::NoValue("sessionTimeout".into()),
            },
        ]
    );
    let empty_sections = "providers:\ndomains:\nclients:\nportal:\nproperties:\n";
    assert!(validate(empty_sections, &env).is_ok());
}

#[test]
fn a_duplicate_provider_id_names_the_first_line() {
    let p = problems(fixture!("duplicate-id.yaml"));
    assert_eq!(
        p,
        [Problem {
            pos: at(6, 9),
            error: ConfigError::DuplicateId {
                what: "provider",
                id: "entrypage".into(),
                first_line: 2
            }
        }]
    );
}

#[test]
fn a_duplicate_client_id_is_refused_whatever_its_case() {
    let p = problems(
        "clients:\n  - {id: 0123456789abcdef, name: A, website: https://a.example}\n  - {id: 0123456789ABCDEF, name: B, website: https://b.example}\n",
    );
    assert!(matches!(
        &p[0].error,
        ConfigError::DuplicateId {
            what: "client",
            first_line: 2,
            ..
        }
    ));
}

#[test]
fn references_to_missing_providers_are_reported() {
    let p = problems(fixture!("unknown-provider.yaml"));
    assert_eq!(
        p,
        [
            Problem {
                pos: at(1, 18),
                error: ConfigError::UnknownProvider("okta".into())
            },
            Problem {
                pos: at(9, 28),
                error: ConfigError::UnknownProvider("google".into())
            }
        ]
    );
}

#[test]
fn a_client_id_must_be_16_hexadecimal_characters() {
    let p = problems(fixture!("bad-client-id.yaml"));
    assert_eq!(
        p[0].error,
        ConfigError::InvalidClientId("0123456789abcdeg".into())
    );
    assert_eq!(p[0].pos, at(2, 9));
    let short = problems("clients:\n  - {id: 0123, name: A, website: https://a.example}\n");
    assert_eq!(short[0].error, ConfigError::InvalidClientId("0123".into()));
}

#[test]
fn malformed_ip_addresses_and_networks_are_reported_each_at_its_item() {
    let p = problems(fixture!("bad-ip.yaml"));
    assert_eq!(
        p,
        [
            Problem {
                pos: at(2, 27),
                error: ConfigError::InvalidIp("192.168.0.300/24".into())
            },
            Problem {
                pos: at(3, 20),
                error: ConfigError::InvalidIp("10.0.0.0/33".into())
            }
        ]
    );
}

#[test]
fn ipv6_networks_and_plain_addresses_are_accepted() {
    let config = validate(
        "properties:\n  apiAccountIPs: ::1,2001:db8::/32,10.0.0.1\n",
        &env,
    );
    let ips = config
        .map(|c| c.properties.api_account_ips)
        .unwrap_or_default();
    assert_eq!(ips.len(), 3);
    assert_eq!(ips[0].to_string(), "::1/128");
    assert_eq!(ips[2].to_string(), "10.0.0.1/32");
}

#[test]
fn spaces_inside_a_comma_list_are_refused() {
    let p = problems(fixture!("space-in-list.yaml"));
    assert_eq!(p[0].error, ConfigError::SpaceInList);
    assert_eq!(p[0].pos, at(2, 24));
}

#[test]
fn an_empty_item_in_a_comma_list_is_refused() {
    let p = problems("properties:\n  apiAccountUsernames: a,,b\n");
    assert_eq!(p[0].error, ConfigError::EmptyListItem);
    assert_eq!(p[0].pos, at(2, 26));
}

#[test]
fn a_yaml_list_is_accepted_where_a_comma_list_is() {
    let config = validate("properties:\n  apiAccountUsernames: [API-Bot, ci]\n", &env);
    let names = config.map(|c| c.properties.api_account_usernames);
    assert_eq!(
        names.ok(),
        Some(vec!["api-bot".to_string(), "ci".to_string()])
    );
}

#[test]
fn an_http_authority_is_refused_unless_it_is_loopback() {
    let p = problems(fixture!("insecure-authority.yaml"));
    assert!(matches!(p[0].error, ConfigError::InsecureAuthority(_)));
    assert_eq!(p[0].pos, at(4, 19));
    for loopback in [
        "http://localhost:8081",
        "http://127.0.0.2",
        "http://[::1]:9000",
    ] {
        let source = format!(
            "providers:\n  - {{id: a, title: A, authorityUrl: \"{loopback}\", clientId: c}}\n"
        );
        assert!(validate(&source, &env).is_ok(), "{loopback}");
    }
}

#[test]
fn a_missing_environment_variable_is_reported() {
    let p = problems(fixture!("missing-env.yaml"));
    assert_eq!(
        p,
        [Problem {
            pos: at(6, 19),
            error: ConfigError::MissingEnvVar("IDGATE_SURELY_UNSET_SECRET".into())
        }]
    );
}

#[test]
fn a_provider_id_must_be_lowercase_letters_digits_dash_and_underscore() {
    let p = problems(
        "providers:\n  - {id: Entry Page, title: A, authorityUrl: \"https://a.example\", clientId: c}\n",
    );
    assert_eq!(
        p[0].error,
        ConfigError::InvalidProviderId("Entry Page".into())
    );
}

#[test]
fn an_unknown_authentication_value_is_refused() {
    let p = problems("defaultAuthentication: sso\n");
    assert!(matches!(
        p[0].error,
        ConfigError::InvalidValue {
            key: "defaultAuthentication",
            ..
        }
    ));
}

#[test]
fn invalid_and_duplicate_domains_are_refused() {
    let p = problems(
        "domains:\n  - name: exa mple.org\n  - name: Example.net\n  - name: example.NET\n",
    );
    assert_eq!(
        p[0].error,
        ConfigError::InvalidDomain("exa mple.org".into())
    );
    assert_eq!(
        p[1].error,
        ConfigError::DuplicateDomain {
            name: "example.NET".into(),
            first_line: 3
        }
    );
}

#[test]
fn scopes_must_include_openid() {
    let p = problems(
        "providers:\n  - {id: a, title: A, authorityUrl: \"https://a.example\", clientId: c, scopes: [email]}\n",
    );
    assert!(matches!(
        p[0].error,
        ConfigError::InvalidValue { key: "scopes", .. }
    ));
}

#[test]
fn a_client_website_is_an_origin_without_a_path() {
    let p = problems(fixture!("many-errors.yaml"));
    assert!(p.iter().any(|p| p.pos == at(10, 14)
        && matches!(p.error, ConfigError::InvalidUrl { key: "website", .. })));
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let p = problems(fixture!("many-errors.yaml"));
    let lines: Vec<usize> = p.iter().map(|p| p.pos.line).collect();
    // sometimes; colour; Entrypage id; http authority; missing clientId; xyz; /app; 0 minutes
    assert_eq!(lines, [1, 2, 4, 4, 6, 8, 10, 12]);
    assert!(matches!(
        p[7].error,
        ConfigError::InvalidValue {
            key: "sessionTimeout",
            ..
        }
    ));
}

#[test]
fn a_yaml_syntax_error_is_a_single_positioned_problem() {
    let p = problems(fixture!("syntax-error.yaml"));
    assert_eq!(p.len(), 1);
    assert!(matches!(p[0].error, ConfigError::Syntax(_)));
    assert!(p[0].pos.line >= 3);
}

#[test]
fn duplicate_yaml_keys_are_refused() {
    let p = problems("defaultAuthentication: any\ndefaultAuthentication: none\n");
    assert_eq!(p[0].pos, at(2, 1));
    assert!(matches!(p[0].error, ConfigError::Syntax(_)));
}

#[test]
fn an_empty_file_is_refused() {
    let p = problems("# nothing here\n");
    assert!(matches!(p[0].error, ConfigError::Syntax(_)));
}

#[test]
fn type_errors_name_the_key_and_what_it_holds() {
    let p = problems(
        "providers:\n  - id: p\n    title: P\n    authorityUrl: https://id.example.org\n    clientId: c\n    requireVerifiedEmail: yes\n",
    );
    assert_eq!(
        p[0].error.to_string(),
        r#"requireVerifiedEmail: expected true or false, found "yes""#
    );
}

#[test]
fn one_bad_field_of_a_provider_makes_no_reference_to_it_an_error() {
    let p = problems(
        "defaultProvider: p\nproviders:\n  - id: p\n    title: P\n    authorityUrl: https://id.example.org\n    clientId: c\n    requireVerifiedEmail: yes\ndomains:\n  - name: example.org\n    providers: [p]\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn the_top_level_must_be_a_mapping() {
    let p = problems("- a\n- b\n");
    assert!(matches!(
        p[0].error,
        ConfigError::WrongType {
            expected: "a mapping",
            ..
        }
    ));
}

#[test]
fn defaults_apply_when_keys_are_absent() {
    let config = validate("providers: []\n", &env).ok();
    let config = config.unwrap_or_else(|| unreachable!());
    assert_eq!(config.properties, Properties::default());
    assert_eq!(
        config.domains.default_authentication(),
        Authentication::Internal
    );
    let p = validate(
        "providers:\n  - {id: a, title: A, authorityUrl: \"https://a.example\", clientId: c}\n",
        &env,
    )
    .ok()
    .map(|c| c.providers[0].scopes.clone());
    assert_eq!(
        p,
        Some(vec!["openid".into(), "email".into(), "profile".into()])
    );
}

#[test]
fn an_api_audience_that_id_tokens_also_carry_is_refused() {
    for (extra, line_col) in [
        ("apiAudience: c", at(2, 72)),
        ("trustedAudiences: [x], apiAudience: x", at(2, 96)),
    ] {
        let source = format!(
            "providers:\n  - {{id: a, title: A, authorityUrl: \"https://id.example.org\", clientId: c, {extra}}}\n"
        );
        let p = problems(&source);
        assert!(
            matches!(
                p[0].error,
                ConfigError::InvalidValue {
                    key: "apiAudience",
                    ..
                }
            ),
            "{p:?}"
        );
        assert_eq!(p[0].pos.line, line_col.line);
    }
    let fine = "providers:\n  - {id: a, title: A, authorityUrl: \"https://id.example.org\", clientId: c, apiAudience: api}\n";
    assert!(validate(fine, &env).is_ok());
}
