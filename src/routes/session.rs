//! `GET /session` (who is this session?) and `GET /auth` (forward-auth for nginx
//! `auth_request`, Traefik ForwardAuth and Caddy `forward_auth`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};

use super::failure::{Failure, Refusal};
use super::render::{self, Format};
use super::{cors, request};
use crate::db::{self, StoreError};
use crate::metrics::CheckLabels;
use crate::reason::Reason;
use crate::sessions::{Session, SessionView};
use crate::signin::{self, SignInError};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/session")
            .route(web::get().to(session))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
    )
    .service(web::resource("/auth").route(web::route().to(auth)))
    .service(web::resource("/forward-auth").route(web::route().to(forward_auth)));
}

/// The browser's live session, if any. Activity slides the idle timeout (written at most once
/// per throttle interval); a session found timed out is removed.
pub async fn current_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<(Session, i64)>, StoreError> {
    let Some(id_hash) = request::session_key(req, state) else {
        return Ok(None);
    };
    let now = state.clock.now();
    let idle_secs = state.config.load().properties.idle_secs();
    // From memory while the entry is young, the session live and its last-seen time recent.
    if let Some(session) = state.session_cache.get(&id_hash, now)
        && session.is_live(now, idle_secs)
        && !session.needs_touch(now, idle_secs)
    {
        state.metrics.cache("sessions", true);
        let ends_at = session.ends_at(idle_secs);
        return Ok(Some((session, ends_at)));
    }
    state.metrics.cache("sessions", false);
    let lookup = id_hash.clone();
    let found = state
        .db
        .run(move |conn| db::sessions::find_session(conn, &lookup))
        .await?;
    let Some(mut session) = found else {
        return Ok(None);
    };
    // The rare writes (a timed-out session's removal, the idle timeout's slide) go through the
    // database's writer, so that reads never queue behind sign-ins.
    if !session.is_live(now, idle_secs) {
        if now >= session.ends_at(idle_secs) {
            state
                .db
                .write(move |conn| db::sessions::delete_session(conn, &id_hash))
                .await?;
        }
        return Ok(None);
    }
    if session.needs_touch(now, idle_secs) {
        let still_there = state
            .db
            .write(move |conn| db::sessions::touch_session(conn, &id_hash, now))
            .await?;
        if !still_there {
            // Ended (a logout, a revocation) since it was read: neither live nor cached.
            return Ok(None);
        }
        session.last_seen_at = now;
    }
    state.session_cache.put(&session, now);
    let ends_at = session.ends_at(idle_secs);
    Ok(Some((session, ends_at)))
}

/// [`current_session`], counted and timed for `/metrics`.
async fn measured_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<(Session, i64)>, StoreError> {
    let started = std::time::Instant::now();
    let found = current_session(req, state).await;
    let result = match &found {
        Ok(Some(_)) => "live",
        Ok(None) => "none",
        Err(_) => "error",
    };
    state.metrics.session_check(
        CheckLabels {
            via: "cookie",
            result,
        },
        started.elapsed(),
    );
    found
}

/// Who the request is: a Bearer access token when one is presented, else the session cookie.
async fn identify(req: &HttpRequest, state: &AppState) -> Result<SessionView, Refusal> {
    if let Some(token) = bearer_token(req) {
        let started = std::time::Instant::now();
        let attempt = request::attempt(req, state);
        let result = signin::authorize_bearer(state, token, &attempt).await;
        let labels = CheckLabels {
            via: "bearer",
            result: match &result {
                Ok(_) => "live",
                Err(SignInError::Refused { .. }) => "none",
                Err(SignInError::Unavailable { .. }) => "error",
                Err(SignInError::RateLimited { .. }) => "none",
            },
        };
        state.metrics.session_check(labels, started.elapsed());
        return result.map_err(Refusal::from);
    }
    let (session, ends_at) = measured_session(req, state)
        .await?
        .ok_or(Failure::NoSession)?;
    // What the running configuration no longer allows (its provider gone, its domain closed)
    // is no session, even before a revocation reached the database.
    let config = state.config.load();
    if !config.allows(&session.provider, &session.member.email) {
        return Err(Failure::NoSession.into());
    }
    // An API account's session holds only from the addresses it may sign in from.
    let properties = &config.properties;
    if !crate::access::api_account_allowed(
        &session.member.username,
        || request::client_ip(req, state),
        &properties.api_account_usernames,
        &properties.api_account_ips,
    ) {
        return Err(Reason::ApiAccountIp.into());
    }
    Ok(SessionView {
        member: session.member,
        provider: session.provider,
        ends_at,
    })
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn session(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let format = Format::of(&req);
    let mut response = match identify(&req, &state).await {
        Ok(view) => render::session(format, HttpResponse::Ok(), &view),
        Err(refusal) => refusal.format(format).error_response(),
    };
    cors::allow_origin(&req, &state, &mut response);
    response
}

/// CORS preflight for `/session`: answered for registered clients' websites only.
async fn preflight(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    cors::preflight(&req, &state, "GET")
}

/// `/auth`: nginx `auth_request`'s contract (200 with the `X-Auth-*` headers, 401, 503).
async fn auth(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    gate(identify(&req, &state).await)
}

/// `/forward-auth`: the same check for proxies that pass idgate's answer on to the browser
/// (Traefik `forwardAuth`, Caddy `forward_auth`): a browser's page request that is refused is
/// sent to sign in (`302` to `/login?redirect=<the original URL>`); anything else refused is
/// `401`, as on `/auth`. So is an API account's session used from an address not its own:
/// signing in again from there would be refused by the same rule.
async fn forward_auth(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let checked = identify(&req, &state).await;
    if let Err(refusal) = &checked
        && refusal.failure() != Failure::Unavailable
        && refusal.failure() != Failure::Refused(Reason::ApiAccountIp)
        && let Some(original) = original_page(&req, &state)
        && let Some(base) = request::public_base(&req, &state)
    {
        let target: String = url::form_urlencoded::byte_serialize(original.as_bytes()).collect();
        return HttpResponse::Found()
            .insert_header(("Location", format!("{base}/login?redirect={target}")))
            .insert_header(("Cache-Control", "no-store"))
            .finish();
    }
    gate(checked)
}

/// The page a browser asked the proxy for, when it may be sent to sign in and back: the proxy
/// is trusted, the request a `GET` or `HEAD` accepting HTML, and the URL on idgate's own origin or
/// a registered client's website. Anything else is not believed (`None`).
fn original_page(req: &HttpRequest, state: &AppState) -> Option<String> {
    let config = state.config.load();
    let peer = req.peer_addr()?.ip();
    if !crate::access::is_trusted_proxy(peer, &config.properties.trusted_proxies) {
        return None;
    }
    let header = |name: &str| -> Option<String> {
        let mut values = req.headers().get_all(name);
        let value = values.next()?.to_str().ok()?.trim().to_string();
        // Two values: none is believed.
        values.next().is_none().then_some(value)
    };
    let method = header("x-forwarded-method")?;
    let accepts_html = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    if !matches!(method.as_str(), "GET" | "HEAD") || !accepts_html {
        return None;
    }
    let proto = header("x-forwarded-proto")?.to_ascii_lowercase();
    let host = header("x-forwarded-host")?;
    let uri = header("x-forwarded-uri")?;
    if !matches!(proto.as_str(), "http" | "https") || !uri.starts_with('/') || uri.starts_with("//")
    {
        return None;
    }
    let url = url::Url::parse(&format!("{proto}://{host}{uri}")).ok()?;
    let origin = url.origin().ascii_serialization();
    let own = request::own_origin(req, state).is_some_and(|own| own == origin);
    if own {
        // Back on idgate's own origin: a path, which the sign-in page keeps as it is.
        let mut path = url.path().to_string();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        return Some(path);
    }
    config.is_client_website(&origin).then(|| url.to_string())
}

/// A forward-auth answer: 200 with the `X-Auth-*` headers, 401, or 503.
fn gate(checked: Result<SessionView, Refusal>) -> HttpResponse {
    match checked {
        Ok(view) => {
            let member = view.member;
            let mut response = HttpResponse::Ok();
            response.insert_header(("Cache-Control", "no-store"));
            response.insert_header(("X-Auth-Member-Id", member.id.to_string()));
            // Header values cannot carry every character a name may have: such values are
            // left out rather than mangled.
            for (name, value) in [
                ("X-Auth-Email", member.email),
                ("X-Auth-Username", member.username),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.insert_header((name, value));
                }
            }
            response.finish()
        }
        // Forward-auth proxies take 401 as "not signed in" and any other error as their own
        // failure: every refusal is 401 (the reason is in the log); an outage stays 503.
        Err(refusal) if refusal.failure() == Failure::Unavailable => {
            HttpResponse::ServiceUnavailable()
                .insert_header(("Cache-Control", "no-store"))
                .finish()
        }
        Err(refusal) => {
            let mut response = HttpResponse::Unauthorized();
            response.insert_header(("Cache-Control", "no-store"));
            if matches!(refusal.failure(), Failure::Refused(_)) {
                response.insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""));
            }
            response.finish()
        }
    }
}
