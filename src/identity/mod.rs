//! `identity.yaml`: the validated, typed configuration of providers, domains, clients and the
//! platform's properties, and how it is loaded.

mod validate;
pub mod yaml;

use std::fmt;
use std::path::Path;

use ipnet::IpNet;
use serde::Serialize;
use url::Url;

use crate::access::DomainPolicy;
pub use validate::validate;
pub use yaml::Pos;

/// The running configuration. Every value has been checked; nothing here can be invalid.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portal: Option<Portal>,
    pub providers: Vec<Provider>,
    #[serde(skip)]
    pub domains: DomainPolicy,
    pub clients: Vec<Client>,
    pub properties: Properties,
    /// What is allowed but probably not meant (`check-config` prints them).
    #[serde(skip)]
    pub warnings: Vec<Problem>,
}

/// The asymmetric ID-token signature algorithms: a provider's default list.
pub const ASYMMETRIC_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];
/// The HMAC algorithms, keyed by the client secret: only for providers that list them.
pub const HMAC_ALGS: [&str; 3] = ["HS256", "HS384", "HS512"];

/// The parameters of an authorization request that idgate sets itself.
pub const RESERVED_AUTHORIZATION_PARAMS: [&str; 11] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    // Request objects carry their own client, redirect and nonce.
    "request",
    "request_uri",
];

impl IdentityConfig {
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Whether `origin` is a registered client's website (CORS, redirects, login-CSRF).
    pub fn is_client_website(&self, origin: &str) -> bool {
        self.clients
            .iter()
            .any(|c| c.website.eq_ignore_ascii_case(origin))
    }

    /// `(provider id, issuer)` of every provider of one issuer (not the multi-tenant ones): the
    /// issuers bindings stored by provider id are carried over to.
    pub fn provider_issuers(&self) -> Vec<(String, String)> {
        self.providers
            .iter()
            .filter(|p| p.tenants.is_none())
            .map(|p| (p.id.clone(), p.authority().to_string()))
            .collect()
    }

    /// The ids of the providers of one issuer (not the multi-tenant ones): the entries whose
    /// bindings stored by provider id are that issuer's.
    pub fn providers_of_issuer(&self, issuer: &str) -> Vec<String> {
        self.providers
            .iter()
            .filter(|p| p.tenants.is_none() && p.authority() == issuer)
            .map(|p| p.id.clone())
            .collect()
    }

    /// Whether a session or code of `provider` for a member with `email` may stand under this
    /// configuration: the provider is configured, and the email's domain signs in through it.
    /// The domain is taken as stored: [`crate::access::DomainPolicy::decide`] normalises it
    /// (this runs on every session check).
    pub fn allows(&self, provider: &str, email: &str) -> bool {
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        self.provider(provider).is_some() && self.domains.decide(domain).allows_provider(provider)
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        let id = id.to_ascii_lowercase();
        self.clients.iter().find(|c| c.id == id)
    }
}

/// The external sign-in portal linked from the sign-in page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Portal {
    pub title: String,
    pub href: Url,
}

/// An OpenID Connect identity provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// `[a-z0-9_-]+`, unique.
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// https (or loopback http); no trailing `/`.
    pub authority_url: Url,
    /// Where `authorityUrl` is written, for what `check-config --probe` finds there.
    #[serde(skip)]
    pub authority_pos: Pos,
    pub client_id: String,
    #[serde(skip)]
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub require_verified_email: bool,
    pub trusted_audiences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_audience: Option<String>,
    /// Where the email comes from: the ID token, the userinfo endpoint, or the ID token and
    /// userinfo when the token has none.
    pub email_source: EmailSource,
    /// The algorithms its ID tokens may be signed with (HMAC only with a client secret).
    pub id_token_signing_algs: Vec<&'static str>,
    /// Fixed parameters added to the authorization request.
    pub authorization_params: std::collections::BTreeMap<String, String>,
    /// For a provider whose issuer names a tenant (`{tenantid}`): the tenants accepted (`*`:
    /// any). `None` for a provider of one issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    /// Whether signing out of idgate also signs out at the provider (when it offers it).
    pub provider_logout: bool,
}

/// Where a provider's email comes from (`emailSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EmailSource {
    /// The ID token's `email`; the userinfo endpoint when the token has none.
    Auto,
    /// The ID token only.
    IdToken,
    /// The userinfo endpoint always.
    Userinfo,
}

/// The placeholder of a multi-tenant issuer (Microsoft Entra ID's `common` and
/// `organizations` endpoints): each tenant's issuer has its id there.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// Whether `tid` has the form of a tenant id (letters, digits and `-`), the only form put in
/// the place of [`TENANT_PLACEHOLDER`] or listed in `tenants`.
pub fn is_tenant_id(tid: &str) -> bool {
    !tid.is_empty() && tid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether `url` names this very machine: `localhost` or a loopback address (IPv4 or IPv6),
/// where plain http is allowed for a provider.
pub fn is_on_this_machine(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl Provider {
    /// Whether `tid` is a tenant this provider accepts.
    pub fn accepts_tenant(&self, tid: &str) -> bool {
        self.tenants
            .as_ref()
            .is_some_and(|t| t.iter().any(|x| x == "*" || x.eq_ignore_ascii_case(tid)))
    }

    /// Whether an ID token may be signed with `alg`.
    pub fn accepts_alg(&self, alg: &str) -> bool {
        self.id_token_signing_algs.contains(&alg)
    }

    /// The authority as a string without a trailing `/`, the form issuers are compared in.
    pub fn authority(&self) -> &str {
        self.authority_url.as_str().trim_end_matches('/')
    }
}

/// A document app registered with the platform.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Client {
    /// 16 lowercase hexadecimal characters.
    pub id: String,
    pub name: String,
    /// The app's origin (`scheme://host[:port]`): CORS and redirects are allowed for it.
    pub website: String,
}

/// The platform's global properties.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Properties {
    /// Lowercase usernames of API accounts.
    pub api_account_usernames: Vec<String>,
    #[serde(rename = "apiAccountIPs")]
    pub api_account_ips: Vec<IpNet>,
    /// Minutes of inactivity after which a session ends.
    pub session_timeout: u32,
    pub trusted_proxies: Vec<IpNet>,
    /// Anonymous writes each client address may cause per minute (also the burst); 0: no limit.
    pub rate_limit_per_minute: u32,
    /// Days the security log keeps its rows.
    pub security_log_days: u32,
}

impl Properties {
    /// The idle timeout (`sessionTimeout`), in seconds.
    pub fn idle_secs(&self) -> i64 {
        i64::from(self.session_timeout) * 60
    }
}

impl Default for Properties {
    fn default() -> Self {
        Properties {
            api_account_usernames: Vec::new(),
            api_account_ips: Vec::new(),
            session_timeout: 30,
            trusted_proxies: Vec::new(),
            rate_limit_per_minute: 300,
            security_log_days: 90,
        }
    }
}

/// A secret read from the configuration. It never appears in `Debug` output or serialisation.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret itself, for the one place that sends it to the provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// One thing wrong with a configuration file. Each variant is one rule of `docs/configuration.md`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The YAML itself cannot be read (syntax, duplicate keys, several documents).
    #[error("{0}")]
    Syntax(String),
    /// A key that the schema does not have (often a typo).
    #[error("unknown key `{key}` (expected one of: {expected})")]
    UnknownKey { key: String, expected: String },
    /// A required key is absent.
    #[error("missing required key `{0}`")]
    MissingKey(&'static str),
    /// A key written without a value (`requireVerifiedEmail:` alone, `~`, `null`), which would
    /// otherwise quietly stand for its default (a required key: this error alone, not also
    /// [`ConfigError::MissingKey`]).
    #[error("`{0}` has no value")]
    NoValue(String),
    /// A value of the wrong YAML type: the key, what it takes, and what it holds.
    #[error("{}expected {expected}, found {found}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    WrongType {
        key: Option<String>,
        expected: &'static str,
        found: String,
    },
    /// A value outside the allowed set or range.
    #[error("invalid `{key}`: {reason}")]
    InvalidValue { key: &'static str, reason: String },
    /// A provider id that is not `[a-z0-9_-]+`.
    #[error("invalid provider id `{0}`: use lowercase letters, digits, `_` and `-`")]
    InvalidProviderId(String),
    /// Two providers or two clients with the same id.
    #[error("duplicate {what} id `{id}` (first at line {first_line})")]
    DuplicateId {
        what: &'static str,
        id: String,
        first_line: usize,
    },
    /// `defaultProvider` or a domain's `providers` names no configured provider.
    #[error("no provider has the id `{0}`")]
    UnknownProvider(String),
    /// A client id that is not 16 hexadecimal characters.
    #[error("invalid client id `{0}`: expected 16 hexadecimal characters")]
    InvalidClientId(String),
    /// An IP address or network that does not parse.
    #[error("invalid IP address or network `{0}`")]
    InvalidIp(String),
    /// A comma list with white space in it (PageSeeder lists have none).
    #[error("spaces are not allowed in a comma list; write `a,b` or use a YAML list")]
    SpaceInList,
    /// A comma list with an empty item (`a,,b` or a trailing comma).
    #[error("empty item in a comma list")]
    EmptyListItem,
    /// An `authorityUrl` that is not https and not on a loopback address.
    #[error("`authorityUrl` must use https (http is allowed only for loopback addresses): `{0}`")]
    InsecureAuthority(String),
    /// A URL that does not parse or has parts it must not have.
    #[error("invalid URL in `{key}`: {reason}")]
    InvalidUrl { key: &'static str, reason: String },
    /// `${VAR}` names an environment variable that is not set.
    #[error("environment variable `{0}` is not set")]
    MissingEnvVar(String),
    /// `tenants: ["*"]`: any Microsoft Entra ID tenant may sign in (a warning).
    #[error("`tenants: [\"*\"]` lets people of any tenant sign in")]
    AnyTenant,
    /// A multi-tenant authority without `tenants`.
    #[error(
        "a multi-tenant authority (`common`, `organizations`) needs `tenants`: the tenant ids to accept, or [\"*\"] for any"
    )]
    MissingTenants,
    /// A domain name that is neither a domain nor `*.domain`.
    #[error("invalid domain `{0}`: expected a domain such as `example.org` or `*.example.org`")]
    InvalidDomain(String),
    /// The same domain listed twice.
    #[error("duplicate domain `{name}` (first at line {first_line})")]
    DuplicateDomain { name: String, first_line: usize },
}

/// A problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub error: ConfigError,
}

/// Every problem of one configuration file, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    /// One `FILE:LINE:COLUMN: message` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: {}", self.file, p.pos, p.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates a configuration file, with `${VAR}` taken from the process environment.
pub fn load(path: &Path) -> Result<IdentityConfig, ConfigErrors> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        problems: vec![Problem {
            pos: Pos { line: 1, column: 1 },
            error: ConfigError::Syntax(format!("cannot read the file: {e}")),
        }],
    })?;
    validate(&source, &|name| std::env::var(name).ok())
        .map_err(|problems| ConfigErrors { file, problems })
}
