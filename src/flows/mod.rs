//! Browser sign-in flows: the authorization-code flow with PKCE (S256), `state` and `nonce`
//! (started by `GET /login/{provider}`, finished by `/callback`), where people may be sent back
//! to afterwards, and one-time authentication codes for document apps.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::identity::{IdentityConfig, Provider};
use crate::ids::random_token;

/// How long an authentication code may be redeemed, in seconds.
pub const CODE_LIFETIME_SECS: i64 = 60;
/// How long a started flow may take to come back, in seconds.
pub const FLOW_LIFETIME_SECS: i64 = 10 * 60;
/// The cookie that binds flows to the browser that started them (plain http; see
/// [`flow_cookie_name`]).
pub const FLOW_COOKIE: &str = "idgate_flow";

/// The secrets of a new flow. `state` and the browser value travel to the browser; the
/// database keeps only their hashes (and the nonce and verifier until the callback).
#[derive(Debug, Clone)]
pub struct NewFlow {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

impl NewFlow {
    pub fn generate() -> Self {
        NewFlow {
            state: random_token(),
            nonce: random_token(),
            code_verifier: random_token(),
        }
    }

    /// The PKCE S256 challenge: base64url(SHA-256(verifier)).
    pub fn code_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.code_verifier.as_bytes()))
    }
}

/// How the provider sends its answer back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// `GET /callback?code=…&state=…`.
    Query,
    /// `POST /callback` from a self-submitting form (the code stays out of URLs and logs).
    FormPost,
}

impl std::str::FromStr for ResponseMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "query" => Ok(ResponseMode::Query),
            "form_post" => Ok(ResponseMode::FormPost),
            _ => Err(format!("`{s}`: use query or form_post")),
        }
    }
}

/// The name of the flow cookie. Over https it is `__Host-idgate_flow`: browsers take such a
/// cookie only from this very host (`Secure`, `Path=/`, no `Domain`), so a sibling subdomain
/// cannot plant a value it knows. Over plain http (development) the prefix is not possible.
pub fn flow_cookie_name(secure: bool, at_root: bool) -> &'static str {
    match (secure, at_root) {
        (true, true) => "__Host-idgate_flow",
        // Under a path the cookie is scoped to the callback, which `__Host-` does not allow.
        (true, false) => "__Secure-idgate_flow",
        (false, _) => FLOW_COOKIE,
    }
}

/// The query parameters of `GET /login/{provider}` passed on to the provider: hints about the
/// person and how to ask them. `prompt` only with the values OpenID Connect defines for a
/// sign-in; anything else is dropped.
pub const FORWARDED_PARAMS: [&str; 4] = ["login_hint", "domain_hint", "prompt", "ui_locales"];
const PROMPTS: [&str; 4] = ["login", "select_account", "consent", "none"];

/// The forwarded parameters among `(name, value)` pairs a browser sent: those of
/// [`FORWARDED_PARAMS`] with a non-empty value of at most 256 characters and no control
/// characters, `prompt` only with an allowed value.
pub fn forwarded_params<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        let Some(known) = FORWARDED_PARAMS.iter().find(|n| **n == name) else {
            continue;
        };
        let acceptable = !value.is_empty()
            && value.chars().count() <= 256
            && !value.chars().any(char::is_control)
            && (*known != "prompt" || PROMPTS.contains(&value));
        if acceptable && !out.iter().any(|(n, _)| n == known) {
            out.push((*known, value.to_string()));
        }
    }
    out
}

/// The provider's authorization URL for a flow: idgate's own parameters, then the provider's
/// fixed `authorizationParams`, then the hints forwarded from the request (`extra`), each name
/// once (a hint the configuration fixes is not overridden).
pub fn authorization_url(
    endpoint: &str,
    provider: &Provider,
    flow: &NewFlow,
    redirect_uri: &str,
    mode: ResponseMode,
    extra: &[(&'static str, String)],
) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(endpoint)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &provider.scopes.join(" "))
            .append_pair("state", &flow.state)
            .append_pair("nonce", &flow.nonce)
            .append_pair("code_challenge", &flow.code_challenge())
            .append_pair("code_challenge_method", "S256");
        if mode == ResponseMode::FormPost {
            query.append_pair("response_mode", "form_post");
        }
        for (name, value) in &provider.authorization_params {
            query.append_pair(name, value);
        }
        for (name, value) in extra {
            if !provider.authorization_params.contains_key(*name) {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

/// Where a person may be sent after signing in: a path on idgate's own origin, or a URL on the
/// origin of a registered client's website. Anything else is ignored (`None`): no open redirect.
pub fn safe_redirect(redirect: &str, config: &IdentityConfig) -> Option<String> {
    safe_redirect_among(redirect, config.clients.iter().map(|c| c.website.as_str()))
}

/// As [`safe_redirect`], with the allowed websites given.
pub fn safe_redirect_among<'a>(
    redirect: &str,
    websites: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    if redirect.is_empty()
        || redirect.len() > 2048
        || redirect
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    if redirect.starts_with('/') {
        // `//host` and `/\host` are other hosts to a browser.
        return (!redirect.starts_with("//")).then(|| redirect.to_string());
    }
    let url = Url::parse(redirect).ok()?;
    if !matches!(url.scheme(), "https" | "http")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let origin = url.origin();
    websites
        .into_iter()
        .filter_map(|w| Url::parse(w).ok())
        .any(|w| w.origin() == origin)
        .then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITES: [&str; 2] = ["https://docs.example.org", "http://127.0.0.1:8081"];

    fn check(redirect: &str) -> Option<String> {
        safe_redirect_among(redirect, SITES)
    }

    #[test]
    fn relative_paths_and_registered_origins_are_allowed() {
        assert_eq!(check("/"), Some("/".into()));
        assert_eq!(check("/docs/a?b=c#d"), Some("/docs/a?b=c#d".into()));
        assert_eq!(
            check("https://docs.example.org/space/page?x=1"),
            Some("https://docs.example.org/space/page?x=1".into())
        );
        assert_eq!(
            check("https://DOCS.example.org:443/"),
            Some("https://docs.example.org/".into())
        );
        assert_eq!(
            check("http://127.0.0.1:8081/x"),
            Some("http://127.0.0.1:8081/x".into())
        );
    }

    #[test]
    fn every_other_destination_is_ignored() {
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "https://docs.example.org.evil.example/",
            "https://docs.example.org@evil.example/",
            "https://user:pw@docs.example.org/",
            "http://docs.example.org/",
            "https://docs.example.org:8443/",
            "http://127.0.0.1:8082/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "evil.example",
            "/ok\r\nSet-Cookie: x=1",
            " /leading-space",
            "https:evil.example",
        ] {
            assert_eq!(check(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_challenge_is_s256_of_the_verifier() {
        // RFC 7636, appendix B.
        let flow = NewFlow {
            state: String::new(),
            nonce: String::new(),
            code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            flow.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let a = NewFlow::generate();
        let b = NewFlow::generate();
        assert_ne!(a.state, b.state);
        assert_ne!(a.state, a.nonce);
        assert_eq!(a.code_verifier.len(), 43);
    }
}
