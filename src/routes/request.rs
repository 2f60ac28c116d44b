//! What handlers read from a request: parameters (refusing duplicates), the client's address,
//! the user agent, the session cookie, and whether the browser reached idgate over https.

use std::collections::HashSet;

use actix_web::HttpRequest;
use actix_web::http::header::USER_AGENT;

use super::failure::Failure;
use crate::access;
use crate::signin::Attempt;
use crate::state::AppState;

/// Request parameters, each name at most once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text from each source in turn (the query,
    /// then a form body). A name given twice, in one source or across them, is refused: two
    /// values for a security parameter leave it open which one a check saw.
    pub fn parse(sources: &[&[u8]]) -> Result<Params, Failure> {
        let mut seen = HashSet::new();
        let mut pairs = Vec::new();
        for source in sources {
            for (name, value) in url::form_urlencoded::parse(source) {
                if !seen.insert(name.clone()) {
                    return Err(Failure::DuplicateParameter);
                }
                pairs.push((name.into_owned(), value.into_owned()));
            }
        }
        Ok(Params(pairs))
    }

    /// The value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The client's address: the TCP peer, or behind a trusted proxy the address it forwards.
pub fn client_ip(req: &HttpRequest, state: &AppState) -> Option<std::net::IpAddr> {
    let config = state.config.load();
    // Lossy, never skipped: a header a client filled with odd bytes must not vanish and leave
    // the proxy looking like the client.
    let forwarded: Vec<String> = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let forwarded: Vec<&str> = forwarded.iter().map(String::as_str).collect();
    req.peer_addr().and_then(|peer| {
        access::client_ip(peer.ip(), &forwarded, &config.properties.trusted_proxies)
    })
}

/// The client's address, user agent and current session, for the rules and the security log.
pub fn attempt(req: &HttpRequest, state: &AppState) -> Attempt {
    let user_agent = req
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Attempt {
        client_ip: client_ip(req, state),
        user_agent,
        previous_session: session_key(req, state),
    }
}

/// Whether the browser reached idgate over https: the public URL says so, or a trusted proxy
/// says so with `X-Forwarded-Proto`.
pub fn is_https(req: &HttpRequest, state: &AppState) -> bool {
    if state
        .settings
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https")
    {
        return true;
    }
    let config = state.config.load();
    let from_proxy = req.peer_addr().is_some_and(|peer| {
        access::is_trusted_proxy(peer.ip(), &config.properties.trusted_proxies)
    });
    // The first value is the one the client-facing proxy set.
    from_proxy
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|protos| protos.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// idgate's address as people reach it (`scheme://host[:port]` and the path it serves under):
/// `--public-url`, or in development the request's `Host` (never a forwarded host a client
/// could write).
pub fn public_base(req: &HttpRequest, state: &AppState) -> Option<String> {
    if let Some(url) = &state.settings.public_url {
        return Some(url.as_str().trim_end_matches('/').to_string());
    }
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)?
        .to_str()
        .ok()?;
    let scheme = if is_https(req, state) {
        "https"
    } else {
        "http"
    };
    let parsed = url::Url::parse(&format!("{scheme}://{host}/")).ok()?;
    let authority_only = parsed.path() == "/"
        && parsed.username().is_empty()
        && parsed.query().is_none()
        && parsed.host_str().is_some();
    authority_only.then(|| parsed.as_str().trim_end_matches('/').to_string())
}

/// idgate's own origin (`scheme://host[:port]`, without the path it may serve under): what a
/// browser sends as `Origin` from idgate's pages.
pub fn own_origin(req: &HttpRequest, state: &AppState) -> Option<String> {
    let base = public_base(req, state)?;
    url::Url::parse(&base)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// Whether an administrator's request comes from idgate's own pages : its `Origin`,
/// or without one its `Referer`, is idgate's own origin. A request with neither is refused.
pub fn is_same_origin(req: &HttpRequest, state: &AppState) -> bool {
    use actix_web::http::header::{ORIGIN, REFERER};
    let Some(own) = own_origin(req, state) else {
        return false;
    };
    let own_origin = |o: &str| o.eq_ignore_ascii_case(&own);
    match header_values(req, ORIGIN) {
        // Every `Origin` must be idgate's (a browser sends one; two is a forgery).
        Some(origins) => origins.iter().all(|o| own_origin(o)),
        None => header_values(req, REFERER).is_some_and(|referers| {
            referers.iter().all(|r| {
                url::Url::parse(r).is_ok_and(|r| own_origin(&r.origin().ascii_serialization()))
            })
        }),
    }
}

/// Whether an origin may ask idgate to sign someone in or out: idgate's own (worked out once,
/// and only when a request names an origin at all) or a registered client's website.
fn trusted_origins(req: &HttpRequest, state: &AppState) -> impl Fn(&str) -> bool {
    let own = std::cell::OnceCell::new();
    move |origin: &str| {
        state.config.load().is_client_website(origin)
            || own
                .get_or_init(|| own_origin(req, state))
                .as_deref()
                .is_some_and(|own: &str| own.eq_ignore_ascii_case(origin))
    }
}

/// Whether a request that signs someone in comes from a page allowed to ask: idgate itself or
/// a registered client's website (login-CSRF defence). `Origin` decides when present; without
/// it, a browser's `Sec-Fetch-Site` and `Referer` do; a request with none of them is not from a
/// browser page and passes.
pub fn is_from_trusted_page(req: &HttpRequest, state: &AppState) -> bool {
    use actix_web::http::header::{ORIGIN, REFERER};
    let trusted = trusted_origins(req, state);
    if let Some(origins) = header_values(req, ORIGIN) {
        return origins.iter().all(|o| trusted(o));
    }
    let referer_origin =
        header_values(req, REFERER).and_then(|referers| match referers.as_slice() {
            [one] => url::Url::parse(one)
                .ok()
                .map(|r| r.origin().ascii_serialization()),
            // Several referrers: none is believed.
            _ => Some("null".to_string()),
        });
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    match header(actix_web::http::header::HeaderName::from_static(
        "sec-fetch-site",
    )) {
        Some("same-origin" | "none") => true,
        Some(_) => referer_origin.is_some_and(|o| trusted(&o)),
        None => referer_origin.is_none_or(|o| trusted(&o)),
    }
}

/// Whether a sign-out comes from a page allowed to ask for it: idgate's own or a registered
/// client's website (logout-CSRF defence). `Origin` decides when present and not `null`; else
/// `Referer`; else `Sec-Fetch-Site`, refusing `cross-site`. idgate's own pages send no referrer,
/// so their sign-out button arrives with `Origin: null` and `Sec-Fetch-Site: same-origin`. A
/// request with none of them is not from a browser page and passes.
pub fn is_sign_out_from_trusted_page(req: &HttpRequest, state: &AppState) -> bool {
    use actix_web::http::header::{ORIGIN, REFERER};
    let trusted = trusted_origins(req, state);
    if let Some(origins) = header_values(req, ORIGIN)
        && origins.iter().any(|o| o != "null")
    {
        return origins.iter().all(|o| o != "null" && trusted(o));
    }
    if let Some(referers) = header_values(req, REFERER) {
        return match referers.as_slice() {
            [one] => url::Url::parse(one).is_ok_and(|r| trusted(&r.origin().ascii_serialization())),
            // Several referrers: none is believed.
            _ => false,
        };
    }
    req.headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|site| !site.eq_ignore_ascii_case("cross-site"))
}

/// Whether a POST carries `id_token` or `access_token` in its URL, where access logs keep it:
/// refused, not used.
pub fn has_token_in_url(req: &HttpRequest) -> bool {
    req.method() == actix_web::http::Method::POST
        && Params::parse(&[req.query_string().as_bytes()])
            .is_ok_and(|q| q.get("id_token").is_some() || q.get("access_token").is_some())
}

/// Every value of a header, or `None` when it is absent; a value that is not text counts as
/// `"null"`, which no origin equals.
fn header_values(
    req: &HttpRequest,
    name: actix_web::http::header::HeaderName,
) -> Option<Vec<String>> {
    let values: Vec<String> = req
        .headers()
        .get_all(name)
        .map(|v| {
            v.to_str()
                .map_or_else(|_| "null".to_string(), str::to_string)
        })
        .collect();
    (!values.is_empty()).then_some(values)
}

/// The database's key of the session id the browser sent, if it has the shape of one (see
/// [`crate::ids::session_key`]).
pub fn session_key(req: &HttpRequest, state: &AppState) -> Option<String> {
    crate::ids::session_key(req.cookie(&state.settings.cookie.name)?.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_from_every_source_and_never_twice() {
        let params = Params::parse(&[b"action=login", b"id_token=a.b.c&x="]);
        let params = params.unwrap_or_default();
        assert_eq!(params.get("action"), Some("login"));
        assert_eq!(params.get("id_token"), Some("a.b.c"));
        assert_eq!(params.get("x"), None);
        assert_eq!(
            Params::parse(&[b"id_token=a&id_token=b"]),
            Err(Failure::DuplicateParameter)
        );
        assert_eq!(
            Params::parse(&[b"action=login", b"action=logout"]),
            Err(Failure::DuplicateParameter)
        );
    }
}
