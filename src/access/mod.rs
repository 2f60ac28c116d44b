//! The platform's access policy as pure functions: which sign-in an email domain allows, and
//! through which providers. No I/O here, so every rule is unit-tested directly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

mod network;
pub mod rate;
pub use network::{api_account_allowed, client_ip, is_api_account_address, is_trusted_proxy};

/// How people of a domain may sign in (`authentication` in `identity.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Authentication {
    /// No sign-in at all.
    None,
    /// The platform's own password form only: idgate refuses SSO.
    Internal,
    /// SSO only.
    External,
    /// SSO or the platform's password form.
    Any,
}

impl Authentication {
    /// Whether a sign-in through an external identity provider is allowed.
    pub fn allows_sso(self) -> bool {
        matches!(self, Authentication::External | Authentication::Any)
    }

    /// Whether the platform's own password form is allowed.
    pub fn allows_password(self) -> bool {
        matches!(self, Authentication::Internal | Authentication::Any)
    }
}

impl FromStr for Authentication {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "none" => Ok(Authentication::None),
            "internal" => Ok(Authentication::Internal),
            "external" => Ok(Authentication::External),
            "any" => Ok(Authentication::Any),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Authentication::None => "none",
            Authentication::Internal => "internal",
            Authentication::External => "external",
            Authentication::Any => "any",
        })
    }
}

/// A domain as written in `domains[].name`: `example.org` or `*.example.net`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// Exactly this domain (ASCII, lowercase).
    Exact(String),
    /// Any subdomain of this suffix, at any depth, but not the suffix itself.
    Wildcard(String),
}

impl DomainPattern {
    /// Parses `example.org` or `*.example.org`; internationalised names become punycode.
    pub fn parse(name: &str) -> Option<Self> {
        match name.strip_prefix("*.") {
            Some(suffix) => normalize_domain(suffix).map(DomainPattern::Wildcard),
            None => normalize_domain(name).map(DomainPattern::Exact),
        }
    }

    /// Whether `domain` (already normalised) falls under this pattern.
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Exact(name) => domain == name,
            DomainPattern::Wildcard(suffix) => domain
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(name) => f.write_str(name),
            DomainPattern::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// Normalises a domain for comparison: IDNA to ASCII (punycode), lowercase, no trailing dot.
/// Returns `None` for anything that is not a valid domain name with at least one label.
pub fn normalize_domain(domain: &str) -> Option<String> {
    normalized_domain(domain).map(Cow::into_owned)
}

/// [`normalize_domain`], borrowing the domain when it is already in that form.
fn normalized_domain(domain: &str) -> Option<Cow<'_, str>> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if is_plain_ascii_domain(domain) {
        return Some(Cow::Borrowed(domain));
    }
    idna_domain(domain).map(Cow::Owned)
}

/// Whether `domain` is one that IDNA (UTS-46, strict) gives back unchanged and that
/// [`normalize_domain`] accepts: at most 253 bytes of DNS labels ([`is_dns_label`]) in lowercase
/// that do not have hyphens as their third and fourth characters (punycode's `xn--` among them,
/// which IDNA checks). The email domains of members are stored in this form, so that checking
/// one costs no IDNA pass.
fn is_plain_ascii_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            is_dns_label(label)
                && !label.bytes().any(|b| b.is_ascii_uppercase())
                && label.get(2..4) != Some("--")
        })
}

/// A label of a domain name as [`normalize_domain`] gives it: 1 to 63 ASCII letters, digits
/// and hyphens, neither first nor last a hyphen.
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// [`normalize_domain`] through IDNA.
fn idna_domain(domain: &str) -> Option<String> {
    if domain.is_empty() || domain.contains('*') {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    let valid = !ascii.is_empty() && ascii.split('.').all(is_dns_label);
    valid.then_some(ascii)
}

/// The ASCII (punycode) form of an email address's domain, if the domain is already canonical
/// apart from ASCII case and genuine internationalised labels. UTS-46 would also map fullwidth
/// letters, `。` as a dot, soft hyphens and other ignorable characters onto ASCII twins, so that
/// two different addresses became one: such domains are refused, and so is a trailing dot (the
/// domain of `ana@example.org.` is no other than `example.org`'s, but the address is another).
pub fn canonical_email_domain(domain: &str) -> Option<String> {
    if domain.ends_with('.') {
        return None;
    }
    let lower = domain.to_ascii_lowercase();
    let ascii = normalize_domain(&lower)?;
    let labels: Vec<&str> = lower.split('.').collect();
    let ascii_labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() != ascii_labels.len() {
        // A character UTS-46 reads as a dot (`。`, `．`).
        return None;
    }
    let canonical = labels
        .iter()
        .zip(&ascii_labels)
        .all(|(label, ascii_label)| {
            // An ASCII label is its own form; any other must be what its punycode decodes to.
            *label == *ascii_label || idna::domain_to_unicode(ascii_label).0 == *label
        });
    canonical.then_some(ascii)
}

/// One rule of `domains`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainRule {
    #[serde(rename = "name", serialize_with = "serialize_display")]
    pub pattern: DomainPattern,
    pub authentication: Authentication,
    /// Provider ids allowed for this domain; `None` allows every provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
}

fn serialize_display<T: fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The answer of the policy for one email domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainDecision<'a> {
    pub authentication: Authentication,
    /// Provider ids allowed; `None` means every provider.
    pub providers: Option<&'a [String]>,
}

impl DomainDecision<'_> {
    /// Whether SSO through `provider` is allowed for the domain.
    pub fn allows_provider(&self, provider: &str) -> bool {
        self.authentication.allows_sso()
            && self
                .providers
                .is_none_or(|ids| ids.iter().any(|id| id == provider))
    }
}

/// All domain rules, indexed for lookup: an exact entry beats a wildcard; among wildcards the
/// longest suffix wins; an unlisted domain gets the default authentication and every provider.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainPolicy {
    default: Authentication,
    rules: Vec<DomainRule>,
    exact: HashMap<String, usize>,
    /// Indexes of wildcard rules, longest suffix first.
    wildcards: Vec<usize>,
}

impl DomainPolicy {
    /// Builds the policy. Rules must have distinct patterns (the configuration checks that).
    pub fn new(default: Authentication, rules: Vec<DomainRule>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match &rule.pattern {
                DomainPattern::Exact(name) => {
                    exact.insert(name.clone(), i);
                }
                DomainPattern::Wildcard(_) => wildcards.push(i),
            }
        }
        wildcards.sort_by_key(|&i| match &rules[i].pattern {
            DomainPattern::Wildcard(suffix) => std::cmp::Reverse(suffix.len()),
            DomainPattern::Exact(_) => std::cmp::Reverse(0),
        });
        DomainPolicy {
            default,
            rules,
            exact,
            wildcards,
        }
    }

    pub fn default_authentication(&self) -> Authentication {
        self.default
    }

    pub fn rules(&self) -> &[DomainRule] {
        &self.rules
    }

    /// The rule that applies to an email domain (as it appears in the email; it is normalised
    /// here). A domain that cannot be normalised gets no sign-in at all.
    pub fn decide(&self, domain: &str) -> DomainDecision<'_> {
        let Some(domain) = normalized_domain(domain) else {
            return DomainDecision {
                authentication: Authentication::None,
                providers: Some(&[]),
            };
        };
        let rule = self.exact.get(domain.as_ref()).copied().or_else(|| {
            self.wildcards
                .iter()
                .copied()
                .find(|&i| self.rules[i].pattern.matches(&domain))
        });
        match rule {
            Some(i) => DomainDecision {
                authentication: self.rules[i].authentication,
                providers: self.rules[i].providers.as_deref(),
            },
            None => DomainDecision {
                authentication: self.default,
                providers: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, authentication: Authentication, providers: Option<&[&str]>) -> DomainRule {
        DomainRule {
            pattern: DomainPattern::parse(name).unwrap_or_else(|| unreachable!("bad {name}")),
            authentication,
            providers: providers.map(|p| p.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn policy() -> DomainPolicy {
        DomainPolicy::new(
            Authentication::Internal,
            vec![
                rule("*.example.net", Authentication::Any, None),
                rule(
                    "*.staff.example.net",
                    Authentication::External,
                    Some(&["okta"]),
                ),
                rule(
                    "example.org",
                    Authentication::External,
                    Some(&["entrypage"]),
                ),
                rule("*.example.org", Authentication::None, None),
                rule("bücher.example", Authentication::Any, None),
                rule("closed.example.net", Authentication::None, None),
            ],
        )
    }

    proptest::proptest! {
        /// Domains taken as they are, without IDNA, are those IDNA gives back unchanged, and
        /// every domain normalises as IDNA alone would normalise it.
        #[test]
        fn plain_ascii_domains_normalise_as_idna_does(
            domain in "[a-z0-9.-]{0,24}|([a-z0-9-]{1,64}\\.){1,5}[a-z]{2,6}\\.?|(xn--|[a-z0-9]{2}--)[a-z0-9-]{0,10}\\.[a-z]{2,3}|[a-zA-Z0-9._*-]{1,20}"
        ) {
            let stripped = domain.strip_suffix('.').unwrap_or(&domain);
            if is_plain_ascii_domain(stripped) {
                proptest::prop_assert_eq!(idna_domain(stripped), Some(stripped.to_string()));
            }
            proptest::prop_assert_eq!(normalize_domain(&domain), idna_domain(stripped));
        }
    }

    #[test]
    fn plain_ascii_domains_skip_idna_only_when_it_would_change_nothing() {
        for (domain, plain, normalised) in [
            ("example.org", true, Some("example.org")),
            ("example.org.", true, Some("example.org")),
            ("Example.ORG", false, Some("example.org")),
            (
                "xn--bcher-kva.example",
                false,
                Some("xn--bcher-kva.example"),
            ),
            ("xn--zz.example", false, None),
            ("ab--cd.example", false, None),
            ("a--b.example", true, Some("a--b.example")),
            ("-a.example", false, None),
            ("a..example", false, None),
            ("bücher.example", false, Some("xn--bcher-kva.example")),
        ] {
            let stripped = domain.strip_suffix('.').unwrap_or(domain);
            assert_eq!(is_plain_ascii_domain(stripped), plain, "{domain}");
            assert_eq!(normalize_domain(domain).as_deref(), normalised, "{domain}");
        }
    }

    #[test]
    fn an_exact_entry_beats_a_wildcard() {
        let p = policy();
        assert_eq!(
            p.decide("closed.example.net").authentication,
            Authentication::None
        );
        assert_eq!(
            p.decide("open.example.net").authentication,
            Authentication::Any
        );
    }

    #[test]
    fn the_longest_wildcard_suffix_wins() {
        let p = policy();
        let d = p.decide("a.staff.example.net");
        assert_eq!(d.authentication, Authentication::External);
        assert!(d.allows_provider("okta"));
        assert!(!d.allows_provider("entrypage"));
    }

    #[test]
    fn a_wildcard_never_matches_its_own_suffix() {
        let p = DomainPolicy::new(
            Authentication::None,
            vec![rule("*.example.net", Authentication::Any, None)],
        );
        assert_eq!(p.decide("example.net").authentication, Authentication::None);
        assert_eq!(
            p.decide("x.example.net").authentication,
            Authentication::Any
        );
        assert_eq!(
            p.decide("a.b.c.example.net").authentication,
            Authentication::Any
        );
        assert_eq!(
            p.decide("badexample.net").authentication,
            Authentication::None
        );
    }

    #[test]
    fn matching_ignores_case_and_a_trailing_dot() {
        let p = policy();
        assert_eq!(
            p.decide("EXAMPLE.Org").authentication,
            Authentication::External
        );
        assert_eq!(
            p.decide("example.org.").authentication,
            Authentication::External
        );
    }

    #[test]
    fn internationalised_domains_compare_in_punycode() {
        let p = policy();
        assert_eq!(
            p.decide("BÜCHER.example").authentication,
            Authentication::Any
        );
        assert_eq!(
            p.decide("xn--bcher-kva.example").authentication,
            Authentication::Any
        );
    }

    #[test]
    fn unlisted_domains_get_the_default_and_every_provider() {
        let p = policy();
        let d = p.decide("elsewhere.com");
        assert_eq!(d.authentication, Authentication::Internal);
        assert_eq!(d.providers, None);
        assert!(!d.allows_provider("entrypage"));
    }

    #[test]
    fn each_authentication_value_allows_what_it_says() {
        use Authentication::*;
        assert!(!None.allows_sso() && !None.allows_password());
        assert!(!Internal.allows_sso() && Internal.allows_password());
        assert!(External.allows_sso() && !External.allows_password());
        assert!(Any.allows_sso() && Any.allows_password());
    }

    #[test]
    fn providers_listed_for_a_domain_restrict_sso() {
        let p = policy();
        assert!(p.decide("example.org").allows_provider("entrypage"));
        assert!(!p.decide("example.org").allows_provider("google"));
        assert!(p.decide("x.example.net").allows_provider("google"));
    }

    #[test]
    fn an_invalid_domain_allows_nothing() {
        let p = policy();
        assert_eq!(
            p.decide("exa mple.org").authentication,
            Authentication::None
        );
        assert_eq!(p.decide("").authentication, Authentication::None);
    }

    #[test]
    fn patterns_parse_and_refuse_what_is_not_a_domain() {
        assert_eq!(
            DomainPattern::parse("*.Example.NET"),
            Some(DomainPattern::Wildcard("example.net".into()))
        );
        assert_eq!(DomainPattern::parse("*"), None);
        assert_eq!(DomainPattern::parse("*.*.example.net"), None);
        assert_eq!(DomainPattern::parse("ex ample.org"), None);
        assert_eq!(DomainPattern::parse("-bad.org"), None);
    }
}
