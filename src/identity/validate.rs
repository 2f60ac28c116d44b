//! From the YAML tree to an [`IdentityConfig`], collecting every problem with its position.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use url::Url;

use super::yaml::{self, Node, NodeKind, Pos};
use super::{
    ASYMMETRIC_ALGS, Client, ConfigError, EmailSource, HMAC_ALGS, IdentityConfig, Portal, Problem,
    Properties, Provider, RESERVED_AUTHORIZATION_PARAMS, Secret,
};
use crate::access::{Authentication, DomainPattern, DomainPolicy, DomainRule};

/// Looks up `${VAR}` references; the process environment in production, a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Validates the text of a configuration file. On failure, returns every problem found,
/// sorted by position.
pub fn validate(source: &str, env: EnvLookup<'_>) -> Result<IdentityConfig, Vec<Problem>> {
    let mut ctx = Ctx {
        problems: Vec::new(),
        warnings: Vec::new(),
        env,
    };
    let root = match yaml::parse(source) {
        Ok((root, syntax)) => {
            for s in syntax {
                ctx.report(s.pos, ConfigError::Syntax(s.message));
            }
            root
        }
        Err(s) => {
            ctx.report(s.pos, ConfigError::Syntax(s.message));
            None
        }
    };
    let config = match root {
        Some(root) => ctx.config(&root),
        None if ctx.problems.is_empty() => {
            ctx.report(
                Pos { line: 1, column: 1 },
                ConfigError::Syntax("the configuration is empty".into()),
            );
            None
        }
        None => None,
    };
    match config {
        Some(mut config) if ctx.problems.is_empty() => {
            config.warnings = ctx.warnings;
            Ok(config)
        }
        _ => {
            let mut problems = ctx.problems;
            problems.sort_by_key(|p| p.pos);
            Err(problems)
        }
    }
}

struct Ctx<'e> {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    env: EnvLookup<'e>,
}

/// The entries of a mapping whose keys were all known.
struct Fields<'n> {
    pos: Pos,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value of `key`, unless absent or null.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, v)| *k == key && !v.is_null())
            .map(|(_, v)| *v)
    }

    /// Whether `key` is written, with a value or without.
    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| *k == key)
    }
}

const TOP_KEYS: &[&str] = &[
    "defaultAuthentication",
    "defaultProvider",
    "portal",
    "providers",
    "domains",
    "clients",
    "properties",
];
/// The top level's keys that hold a list or a mapping: written without a value, they hold
/// nothing.
const SECTIONS: &[&str] = &["portal", "providers", "domains", "clients", "properties"];
const PORTAL_KEYS: &[&str] = &["title", "href"];
const PROVIDER_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "authorityUrl",
    "clientId",
    "clientSecret",
    "scopes",
    "requireVerifiedEmail",
    "trustedAudiences",
    "apiAudience",
    "emailSource",
    "idTokenSigningAlgs",
    "authorizationParams",
    "tenants",
    "providerLogout",
];
const DOMAIN_KEYS: &[&str] = &["name", "authentication", "providers"];
const CLIENT_KEYS: &[&str] = &["id", "name", "website"];
const PROPERTY_KEYS: &[&str] = &[
    "apiAccountUsernames",
    "apiAccountIPs",
    "sessionTimeout",
    "trustedProxies",
    "rateLimitPerMinute",
    "securityLogDays",
];

impl Ctx<'_> {
    fn report(&mut self, pos: Pos, error: ConfigError) {
        self.problems.push(Problem { pos, error });
    }

    fn config(&mut self, root: &Node) -> Option<IdentityConfig> {
        let top = self.map(root, TOP_KEYS)?;
        let default_authentication = top
            .get("defaultAuthentication")
            .and_then(|n| self.authentication(n, "defaultAuthentication"))
            .unwrap_or(Authentication::Internal);
        let portal = top.get("portal").and_then(|n| self.portal(n));
        let provider_items = top.get("providers").and_then(|n| self.list(n));
        let providers = provider_items
            .map(|items| self.providers(items))
            .unwrap_or_default();
        // Every id a provider entry declares, valid entry or not: one bad field of a provider
        // does not make the references to it errors too.
        let declared: Vec<String> = provider_items
            .unwrap_or_default()
            .iter()
            .filter_map(declared_id)
            .collect();
        let known = |id: &str| declared.iter().any(|d| d == id);
        let default_provider = top
            .get("defaultProvider")
            .and_then(|n| self.string(n).map(|s| (n.pos, s)));
        if let Some((pos, id)) = &default_provider
            && !known(id)
        {
            self.report(*pos, ConfigError::UnknownProvider(id.clone()));
        }
        let domains = top
            .get("domains")
            .and_then(|n| self.list(n))
            .map(|items| self.domains(items, &known))
            .unwrap_or_default();
        let clients = top
            .get("clients")
            .and_then(|n| self.list(n))
            .map(|items| self.clients(items))
            .unwrap_or_default();
        let properties = match top.get("properties") {
            Some(n) => self.properties(n),
            None => Some(Properties::default()),
        };
        Some(IdentityConfig {
            default_provider: default_provider.map(|(_, id)| id),
            portal,
            providers,
            domains: DomainPolicy::new(default_authentication, domains),
            clients,
            properties: properties?,
            warnings: Vec::new(),
        })
    }

    // ----- shapes -----------------------------------------------------------------------------

    /// A mapping whose keys are all in `allowed`; unknown keys are reported (and skipped), and so
    /// are keys without a value, but for the top level's sections (`clients:` alone is no
    /// clients).
    fn map<'n>(&mut self, node: &'n Node, allowed: &[&str]) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a mapping");
            return None;
        };
        let mut fields = Fields {
            pos: node.pos,
            entries: Vec::new(),
        };
        for (key, value) in entries {
            let name = key.as_scalar().unwrap_or_default();
            if allowed.contains(&name) {
                if value.is_null() && !(allowed == TOP_KEYS && SECTIONS.contains(&name)) {
                    self.report(value.pos, ConfigError::NoValue(name.to_string()));
                }
                fields.entries.push((name, value));
            } else {
                self.report(
                    key.pos,
                    ConfigError::UnknownKey {
                        key: name.to_string(),
                        expected: allowed.join(", "),
                    },
                );
            }
        }
        Some(fields)
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, key: &'static str) -> Option<&'n Node> {
        let node = fields.get(key);
        // A key written without a value is reported as such already ([`Ctx::map`]).
        if node.is_none() && !fields.has(key) {
            self.report(fields.pos, ConfigError::MissingKey(key));
        }
        node
    }

    fn wrong_type(&mut self, node: &Node, expected: &'static str) {
        self.report(
            node.pos,
            ConfigError::WrongType {
                key: node.key.clone(),
                expected,
                found: node.found(),
            },
        );
    }

    fn list<'n>(&mut self, node: &'n Node) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, "a list");
                None
            }
        }
    }

    /// Any scalar, as its text (so `clientId: 1234567890123456` stays a string).
    fn string(&mut self, node: &Node) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { text, .. } if text.chars().any(is_forbidden_char) => {
                self.report(
                    node.pos,
                    ConfigError::InvalidValue {
                        key: "text",
                        reason: "control characters are not allowed".into(),
                    },
                );
                None
            }
            NodeKind::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.wrong_type(node, "a string");
                None
            }
        }
    }

    fn bool(&mut self, node: &Node) -> Option<bool> {
        match &node.kind {
            NodeKind::Scalar { text, plain: true } if text == "true" => Some(true),
            NodeKind::Scalar { text, plain: true } if text == "false" => Some(false),
            _ => {
                self.wrong_type(node, "true or false");
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node) -> Option<Vec<String>> {
        let items = self.list(node)?;
        let mut out = Vec::new();
        for item in items {
            out.push(self.string(item)?);
        }
        Some(out)
    }

    /// A PageSeeder comma list (`a,b,c`, no spaces) or a YAML list; items with their positions.
    fn comma_list(&mut self, node: &Node) -> Option<Vec<(Pos, String)>> {
        match &node.kind {
            NodeKind::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push((item.pos, self.string(item)?));
                }
                Some(out)
            }
            NodeKind::Scalar { text, plain } => {
                if text.is_empty() {
                    return Some(Vec::new());
                }
                if text.chars().any(char::is_whitespace) {
                    self.report(node.pos, ConfigError::SpaceInList);
                    return None;
                }
                // Item columns are exact for single-line scalars; quoted ones start one later.
                let mut column = node.pos.column + usize::from(!plain);
                let mut out = Vec::new();
                for item in text.split(',') {
                    let pos = Pos {
                        line: node.pos.line,
                        column,
                    };
                    if item.is_empty() {
                        self.report(pos, ConfigError::EmptyListItem);
                        return None;
                    }
                    out.push((pos, item.to_string()));
                    column += item.chars().count() + 1;
                }
                Some(out)
            }
            NodeKind::Map(_) => {
                self.wrong_type(node, "a comma list or a list");
                None
            }
        }
    }

    fn authentication(&mut self, node: &Node, key: &'static str) -> Option<Authentication> {
        let text = self.string(node)?;
        let value = text.parse().ok();
        if value.is_none() {
            self.report(
                node.pos,
                ConfigError::InvalidValue {
                    key,
                    reason: format!("`{text}` is not one of none, internal, external, any"),
                },
            );
        }
        value
    }

    fn url(&mut self, node: &Node, key: &'static str) -> Option<Url> {
        let text = self.string(node)?;
        let reason = match Url::parse(&text) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                "the scheme must be http or https".to_string()
            }
            Ok(url) if url.host().is_none() => "a host is required".to_string(),
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                "credentials are not allowed in the URL".to_string()
            }
            Ok(url) if url.fragment().is_some() => "a fragment is not allowed".to_string(),
            Ok(url) => return Some(url),
            Err(e) => e.to_string(),
        };
        self.report(node.pos, ConfigError::InvalidUrl { key, reason });
        None
    }

    fn ip_networks(&mut self, node: &Node) -> Option<Vec<IpNet>> {
        let mut nets = Vec::new();
        let mut ok = true;
        for (pos, item) in self.comma_list(node)? {
            match parse_network(&item) {
                Some(net) => nets.push(net),
                None => {
                    self.report(pos, ConfigError::InvalidIp(item));
                    ok = false;
                }
            }
        }
        ok.then_some(nets)
    }

    // ----- sections ---------------------------------------------------------------------------

    fn portal(&mut self, node: &Node) -> Option<Portal> {
        let f = self.map(node, PORTAL_KEYS)?;
        let title = self.required(&f, "title").and_then(|n| self.string(n));
        let href = self.required(&f, "href").and_then(|n| self.url(n, "href"));
        Some(Portal {
            title: title?,
            href: href?,
        })
    }

    fn providers(&mut self, items: &[Node]) -> Vec<Provider> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for item in items {
            let Some(provider) = self.provider(item) else {
                continue;
            };
            if let Some(&first_line) = seen.get(&provider.id) {
                self.report(
                    id_pos(item),
                    ConfigError::DuplicateId {
                        what: "provider",
                        id: provider.id,
                        first_line,
                    },
                );
                continue;
            }
            seen.insert(provider.id.clone(), id_pos(item).line);
            out.push(provider);
        }
        out
    }

    fn provider(&mut self, node: &Node) -> Option<Provider> {
        let f = self.map(node, PROVIDER_KEYS)?;
        let id = self.required(&f, "id").and_then(|n| {
            let id = self.string(n)?;
            let valid = !id.is_empty()
                && id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid {
                self.report(n.pos, ConfigError::InvalidProviderId(id.clone()));
            }
            valid.then_some(id)
        });
        let title = self.required(&f, "title").and_then(|n| self.string(n));
        let description = f.get("description").and_then(|n| self.string(n));
        let authority_url = self
            .required(&f, "authorityUrl")
            .and_then(|n| self.authority(n));
        let client_id = self.required(&f, "clientId").and_then(|n| self.string(n));
        let client_secret = f.get("clientSecret").and_then(|n| self.secret(n));
        let scopes = match f.get("scopes") {
            Some(n) => self.string_list(n).and_then(|scopes| {
                let has_openid = scopes.iter().any(|s| s == "openid");
                if !has_openid {
                    self.report(
                        n.pos,
                        ConfigError::InvalidValue {
                            key: "scopes",
                            reason: "the `openid` scope is required".into(),
                        },
                    );
                }
                has_openid.then_some(scopes)
            }),
            None => Some(vec!["openid".into(), "email".into(), "profile".into()]),
        };
        let require_verified_email = match f.get("requireVerifiedEmail") {
            Some(n) => self.bool(n),
            None => Some(false),
        };
        let trusted_audiences = match f.get("trustedAudiences") {
            Some(n) => self.string_list(n),
            None => Some(Vec::new()),
        };
        let api_audience = f.get("apiAudience").and_then(|n| {
            let audience = self.string(n)?;
            // An audience ID tokens also carry would let an ID token pass as an access token.
            let shared = client_id.as_deref() == Some(audience.as_str())
                || trusted_audiences
                    .as_ref()
                    .is_some_and(|t| t.contains(&audience));
            if shared {
                self.report(
                    n.pos,
                    ConfigError::InvalidValue {
                        key: "apiAudience",
                        reason: "must differ from `clientId` and from every `trustedAudiences` entry, or ID tokens would pass as access tokens".into(),
                    },
                );
            }
            (!shared).then_some(audience)
        });
        let email_source = match f.get("emailSource") {
            Some(n) => self.email_source(n),
            None => Some(EmailSource::Auto),
        };
        let id_token_signing_algs = match f.get("idTokenSigningAlgs") {
            Some(n) => self.signing_algs(n, client_secret.as_ref().map_or(0, |s| s.expose().len())),
            None => Some(ASYMMETRIC_ALGS.to_vec()),
        };
        let authorization_params = match f.get("authorizationParams") {
            Some(n) => self.authorization_params(n),
            None => Some(BTreeMap::new()),
        };
        let tenants = match f.get("tenants") {
            Some(n) => self.tenants(n),
            None => {
                if authority_url
                    .as_ref()
                    .is_some_and(is_multi_tenant_authority)
                {
                    let pos = f.get("authorityUrl").map_or(f.pos, |n| n.pos);
                    self.report(pos, ConfigError::MissingTenants);
                }
                None
            }
        };
        let provider_logout = match f.get("providerLogout") {
            Some(n) => self.bool(n),
            None => Some(true),
        };
        Some(Provider {
            id: id?,
            title: title?,
            description,
            authority_url: authority_url?,
            authority_pos: f.get("authorityUrl").map_or(f.pos, |n| n.pos),
            client_id: client_id?,
            client_secret,
            scopes: scopes?,
            require_verified_email: require_verified_email?,
            trusted_audiences: trusted_audiences?,
            api_audience,
            email_source: email_source?,
            id_token_signing_algs: id_token_signing_algs?,
            authorization_params: authorization_params?,
            tenants,
            provider_logout: provider_logout?,
        })
    }

    fn email_source(&mut self, node: &Node) -> Option<EmailSource> {
        let text = self.string(node)?;
        match text.as_str() {
            "auto" => Some(EmailSource::Auto),
            "idToken" => Some(EmailSource::IdToken),
            "userinfo" => Some(EmailSource::Userinfo),
            _ => {
                self.report(
                    node.pos,
                    ConfigError::InvalidValue {
                        key: "emailSource",
                        reason: format!("`{text}`: expected auto, idToken or userinfo"),
                    },
                );
                None
            }
        }
    }

    /// A list of signature algorithms; HMAC ones only for a provider with a client secret at
    /// least as long as the hash (32, 48 or 64 bytes, as RFC 7518 asks): a short secret can be
    /// found from one token by trying.
    fn signing_algs(&mut self, node: &Node, secret_len: usize) -> Option<Vec<&'static str>> {
        let items = self.list(node)?;
        let mut algs = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(text) = self.string(item) else {
                ok = false;
                continue;
            };
            let known = ASYMMETRIC_ALGS
                .iter()
                .chain(&HMAC_ALGS)
                .find(|a| **a == text);
            let problem = match known {
                None => Some(format!(
                    "`{text}` is not a supported algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512)"
                )),
                Some(alg) if HMAC_ALGS.contains(alg) && secret_len == 0 => Some(format!(
                    "`{text}` is keyed by the client secret: set `clientSecret` first"
                )),
                Some(alg) if HMAC_ALGS.contains(alg) && secret_len < hmac_key_len(alg) => {
                    Some(format!(
                        "`{text}` needs a client secret of at least {} bytes",
                        hmac_key_len(alg)
                    ))
                }
                Some(_) => None,
            };
            match (problem, known) {
                (Some(reason), _) => {
                    ok = false;
                    self.report(
                        item.pos,
                        ConfigError::InvalidValue {
                            key: "idTokenSigningAlgs",
                            reason,
                        },
                    );
                }
                (None, Some(alg)) => algs.push(*alg),
                (None, None) => {}
            }
        }
        if ok && algs.is_empty() {
            self.report(
                node.pos,
                ConfigError::InvalidValue {
                    key: "idTokenSigningAlgs",
                    reason: "at least one algorithm is needed".into(),
                },
            );
            return None;
        }
        ok.then_some(algs)
    }

    /// A mapping of parameter names to values, none of them one idgate sets itself.
    fn authorization_params(&mut self, node: &Node) -> Option<BTreeMap<String, String>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a mapping");
            return None;
        };
        let mut params = BTreeMap::new();
        let mut ok = true;
        for (key, value) in entries {
            let name = key.as_scalar().unwrap_or_default().to_string();
            if RESERVED_AUTHORIZATION_PARAMS.contains(&name.as_str()) || name.is_empty() {
                ok = false;
                self.report(
                    key.pos,
                    ConfigError::InvalidValue {
                        key: "authorizationParams",
                        reason: format!("`{name}` is set by idgate itself"),
                    },
                );
                continue;
            }
            match self.string(value) {
                Some(value) => {
                    params.insert(name, value);
                }
                None => ok = false,
            }
        }
        ok.then_some(params)
    }

    /// Tenant ids, or `["*"]` (any tenant, with a warning).
    fn tenants(&mut self, node: &Node) -> Option<Vec<String>> {
        let tenants = self.string_list(node)?;
        if tenants.is_empty() {
            self.report(
                node.pos,
                ConfigError::InvalidValue {
                    key: "tenants",
                    reason: "list at least one tenant id, or \"*\" for any".into(),
                },
            );
            return None;
        }
        let valid = |t: &str| t == "*" || super::is_tenant_id(t);
        if let Some(bad) = tenants.iter().find(|t| !valid(t)) {
            self.report(
                node.pos,
                ConfigError::InvalidValue {
                    key: "tenants",
                    reason: format!("`{bad}` is not a tenant id (letters, digits and `-`)"),
                },
            );
            return None;
        }
        if tenants.iter().any(|t| t == "*") {
            self.warnings.push(Problem {
                pos: node.pos,
                error: ConfigError::AnyTenant,
            });
        }
        Some(tenants)
    }

    fn authority(&mut self, node: &Node) -> Option<Url> {
        let url = self.url(node, "authorityUrl")?;
        if url.scheme() != "https" && !super::is_on_this_machine(&url) {
            self.report(node.pos, ConfigError::InsecureAuthority(url.to_string()));
            return None;
        }
        if url.query().is_some() {
            self.report(
                node.pos,
                ConfigError::InvalidUrl {
                    key: "authorityUrl",
                    reason: "a query is not allowed".into(),
                },
            );
            return None;
        }
        Some(url)
    }

    /// A literal secret or `${VAR}` read from the environment.
    fn secret(&mut self, node: &Node) -> Option<Secret> {
        let secret = self.secret_text(node)?;
        if secret.expose().is_empty() {
            self.report(
                node.pos,
                ConfigError::InvalidValue {
                    key: "clientSecret",
                    reason: "the secret is empty".into(),
                },
            );
            return None;
        }
        Some(secret)
    }

    /// A literal secret or `${VAR}` read from the environment, possibly empty.
    fn secret_text(&mut self, node: &Node) -> Option<Secret> {
        let text = self.string(node)?;
        let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return Some(Secret::new(text));
        };
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            self.report(
                node.pos,
                ConfigError::InvalidValue {
                    key: "clientSecret",
                    reason: format!("`{name}` is not an environment variable name"),
                },
            );
            return None;
        }
        match (self.env)(name) {
            Some(value) => Some(Secret::new(value)),
            None => {
                self.report(node.pos, ConfigError::MissingEnvVar(name.to_string()));
                None
            }
        }
    }

    fn domains(&mut self, items: &[Node], known: &dyn Fn(&str) -> bool) -> Vec<DomainRule> {
        let mut seen: HashMap<DomainPattern, usize> = HashMap::new();
        let mut out = Vec::new();
        for item in items {
            let Some(f) = self.map(item, DOMAIN_KEYS) else {
                continue;
            };
            let pattern = self.required(&f, "name").and_then(|n| {
                let name = self.string(n)?;
                let pattern = DomainPattern::parse(&name);
                match &pattern {
                    None => self.report(n.pos, ConfigError::InvalidDomain(name)),
                    Some(p) => match seen.get(p) {
                        Some(&first_line) => {
                            self.report(n.pos, ConfigError::DuplicateDomain { name, first_line });
                            return None;
                        }
                        None => {
                            seen.insert(p.clone(), n.pos.line);
                        }
                    },
                }
                pattern
            });
            let authentication = match f.get("authentication") {
                Some(n) => self.authentication(n, "authentication"),
                None => Some(Authentication::Any),
            };
            let providers = match f.get("providers") {
                Some(n) => self.provider_refs(n, known).map(Some),
                None => Some(None),
            };
            if let (Some(pattern), Some(authentication), Some(providers)) =
                (pattern, authentication, providers)
            {
                out.push(DomainRule {
                    pattern,
                    authentication,
                    providers,
                });
            }
        }
        out
    }

    fn provider_refs(&mut self, node: &Node, known: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
        let items = self.list(node)?;
        let mut ids = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(id) = self.string(item) else {
                ok = false;
                continue;
            };
            if !known(&id) {
                self.report(item.pos, ConfigError::UnknownProvider(id));
                ok = false;
                continue;
            }
            ids.push(id);
        }
        ok.then_some(ids)
    }

    fn clients(&mut self, items: &[Node]) -> Vec<Client> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for item in items {
            let Some(client) = self.client(item) else {
                continue;
            };
            if let Some(&first_line) = seen.get(&client.id) {
                self.report(
                    id_pos(item),
                    ConfigError::DuplicateId {
                        what: "client",
                        id: client.id,
                        first_line,
                    },
                );
                continue;
            }
            seen.insert(client.id.clone(), id_pos(item).line);
            out.push(client);
        }
        out
    }

    fn client(&mut self, node: &Node) -> Option<Client> {
        let f = self.map(node, CLIENT_KEYS)?;
        let id = self.required(&f, "id").and_then(|n| {
            let id = self.string(n)?;
            let valid = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                self.report(n.pos, ConfigError::InvalidClientId(id.clone()));
            }
            valid.then(|| id.to_ascii_lowercase())
        });
        let name = self.required(&f, "name").and_then(|n| self.string(n));
        let website = self.required(&f, "website").and_then(|n| {
            let url = self.url(n, "website")?;
            let has_path = url.path() != "/" || url.query().is_some();
            if has_path {
                self.report(
                    n.pos,
                    ConfigError::InvalidUrl {
                        key: "website",
                        reason: "give the origin only (scheme, host and port), without a path"
                            .into(),
                    },
                );
                return None;
            }
            Some(url.origin().ascii_serialization())
        });
        Some(Client {
            id: id?,
            name: name?,
            website: website?,
        })
    }

    fn properties(&mut self, node: &Node) -> Option<Properties> {
        let f = self.map(node, PROPERTY_KEYS)?;
        let defaults = Properties::default();
        let api_account_usernames = match f.get("apiAccountUsernames") {
            Some(n) => self
                .comma_list(n)
                .map(|items| items.into_iter().map(|(_, u)| u.to_lowercase()).collect()),
            None => Some(defaults.api_account_usernames),
        };
        let api_account_ips = match f.get("apiAccountIPs") {
            Some(n) => self.ip_networks(n),
            None => Some(defaults.api_account_ips),
        };
        let trusted_proxies = match f.get("trustedProxies") {
            Some(n) => self.ip_networks(n),
            None => Some(defaults.trusted_proxies),
        };
        let session_timeout = match f.get("sessionTimeout") {
            Some(n) => self.minutes(n),
            None => Some(defaults.session_timeout),
        };
        let rate_limit_per_minute = match f.get("rateLimitPerMinute") {
            Some(n) => self.number(n, "rateLimitPerMinute", 0..=1_000_000, "requests"),
            None => Some(defaults.rate_limit_per_minute),
        };
        let security_log_days = match f.get("securityLogDays") {
            Some(n) => self.number(n, "securityLogDays", 1..=36_500, "days"),
            None => Some(defaults.security_log_days),
        };
        Some(Properties {
            api_account_usernames: api_account_usernames?,
            api_account_ips: api_account_ips?,
            session_timeout: session_timeout?,
            trusted_proxies: trusted_proxies?,
            rate_limit_per_minute: rate_limit_per_minute?,
            security_log_days: security_log_days?,
        })
    }

    /// A whole number of minutes, 1 to 525,600 (a year); PageSeeder writes it as a string too.
    fn minutes(&mut self, node: &Node) -> Option<u32> {
        self.number(node, "sessionTimeout", 1..=525_600, "minutes")
    }

    /// A whole number in `range`; `what` says what it counts.
    fn number(
        &mut self,
        node: &Node,
        key: &'static str,
        range: std::ops::RangeInclusive<u32>,
        what: &str,
    ) -> Option<u32> {
        let text = self.string(node)?;
        match text.parse::<u32>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.report(
                    node.pos,
                    ConfigError::InvalidValue {
                        key,
                        reason: format!(
                            "`{text}` is not a number of {what} from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    },
                );
                None
            }
        }
    }
}

/// Where an item's `id` value stands (or the item itself), for duplicate-id messages.
/// Control characters (other than tab and line ends) and bidirectional controls: they would
/// make the pages, logs and XML answers that show configuration text read otherwise.
fn is_forbidden_char(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        || crate::members::is_bidi_control(c)
        || matches!(c, '\u{fffe}' | '\u{ffff}')
}

/// The shortest client secret an HMAC algorithm may be keyed with: the hash's size.
fn hmac_key_len(alg: &str) -> usize {
    match alg {
        "HS384" => 48,
        "HS512" => 64,
        _ => 32,
    }
}

/// Microsoft Entra ID's multi-tenant authorities (`common`, `organizations`, `consumers`),
/// whose issuer names each token's tenant.
fn is_multi_tenant_authority(url: &Url) -> bool {
    url.host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case("login.microsoftonline.com"))
        && url
            .path_segments()
            .and_then(|mut s| s.next())
            .is_some_and(|t| matches!(t, "common" | "organizations" | "consumers"))
}

/// The `id` a mapping declares, if it has one as text.
fn declared_id(item: &Node) -> Option<String> {
    let NodeKind::Map(entries) = &item.kind else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.as_scalar() == Some("id"))
        .and_then(|(_, v)| v.as_scalar())
        .map(str::to_string)
}

fn id_pos(item: &Node) -> Pos {
    match &item.kind {
        NodeKind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some("id"))
            .map_or(item.pos, |(_, v)| v.pos),
        _ => item.pos,
    }
}

/// An address (a host network) or a network in CIDR notation, IPv4 or IPv6.
fn parse_network(text: &str) -> Option<IpNet> {
    if text.contains('/') {
        text.parse::<IpNet>().ok()
    } else {
        text.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

#[cfg(test)]
mod tests;
