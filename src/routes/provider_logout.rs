//! Logout driven by the identity provider: `POST /backchannel-logout` (OpenID Connect
//! Back-Channel Logout 1.0, a signed logout token) and `GET /frontchannel-logout` (Front-Channel
//! Logout 1.0, a page the provider frames). Sessions end in the database, so on every instance;
//! this instance's session cache forgets them at once, the others' within its time.

use actix_web::http::header::CONTENT_SECURITY_POLICY;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::request::{self, Params};
use crate::audit::{Event, Outcome};
use crate::db::{self, StoreError};
use crate::ids::hash_id;
use crate::oidc::verify::{VerifiedLogout, VerifyError, verify_logout_token};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/backchannel-logout").route(web::post().to(backchannel)))
        .service(web::resource("/frontchannel-logout").route(web::get().to(frontchannel)));
}

/// Refused: `400 {"error":"invalid_request"}`, nothing ended.
fn invalid_request() -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "error": "invalid_request" }))
}

/// Not decided: `503`, for the provider to try again.
fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// Why a logout token ended nothing.
enum Refused {
    /// The token (or the request) is not one idgate accepts; the detail is for the log.
    Invalid(String),
    /// The `jti` was seen before.
    Replayed,
    /// The database failed.
    Store(StoreError),
    /// The provider's keys could not be had.
    Unavailable(String),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Refused::Store(error)
    }
}

/// `POST /backchannel-logout` with `logout_token`.
async fn backchannel(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let attempt = request::attempt(&req, &state);
    let mut event = attempt.event(Event::BackchannelLogout);
    let token = match Params::parse(&[&body]) {
        Ok(params) => params.get("logout_token").map(str::to_string),
        Err(_) => None,
    };
    let now = state.clock.now();
    let verified = match &token {
        None => Err(VerifyError::Refused(
            crate::reason::Reason::Malformed,
            Some("no logout_token".into()),
        )),
        Some(token) => verify_logout_token(&state.keys, &state.config.load(), token, now).await,
    };
    let outcome = match verified {
        Ok(logout) => {
            event.provider = Some(logout.provider.clone());
            end_sessions(&state, logout).await
        }
        Err(VerifyError::Refused(reason, detail)) => Err(Refused::Invalid(format!(
            "{}{}",
            reason.code(),
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        ))),
        Err(VerifyError::Unavailable(detail)) => Err(Refused::Unavailable(detail)),
    };
    match outcome {
        Ok(ended) => {
            for id_hash in &ended {
                state.session_cache.forget(id_hash);
            }
            event.outcome = Outcome::Success;
            tracing::info!(target: "idgate::security", incident = %event.incident, sessions = ended.len(), "back-channel logout");
            state.db.record(&event, now).await;
            HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .finish()
        }
        // Nothing is wrong with the token that idgate knows of: 503, so that the provider retries.
        Err(Refused::Store(error)) => {
            tracing::error!(incident = %event.incident, %error, "back-channel logout failed: database");
            unavailable()
        }
        Err(Refused::Unavailable(detail)) => {
            tracing::warn!(incident = %event.incident, %detail, "back-channel logout failed: the provider's keys are unavailable");
            unavailable()
        }
        Err(refused) => {
            let detail = match refused {
                Refused::Invalid(detail) => detail,
                _ => "the logout token's jti was seen before".to_string(),
            };
            event.reason = Some("invalid_request".into());
            tracing::info!(target: "idgate::security", incident = %event.incident, %detail, "refusal detail");
            // A refusal is an anonymous write: beyond the address's allowance, only logged.
            if state.take_anonymous_write(attempt.client_ip).is_ok() {
                state.db.record(&event, now).await;
            } else {
                event.trace();
            }
            invalid_request()
        }
    }
}

/// Remembers the token's `jti` (refusing a second use) and ends the sessions it names, in one
/// transaction; the id hashes of the sessions ended.
async fn end_sessions(state: &AppState, logout: VerifiedLogout) -> Result<Vec<String>, Refused> {
    state
        .db
        .write(move |conn| {
            let key = db::sessions::logout_guard_key(&hash_id(&format!(
                "logout {} {}",
                logout.issuer, logout.jti
            )));
            if !db::sessions::remember_token(conn, &key, logout.remember_until)? {
                return Err(Refused::Replayed);
            }
            match (&logout.sid, &logout.subject) {
                (Some(sid), _) => Ok(db::sessions::delete_provider_session(
                    conn,
                    &logout.issuer,
                    sid,
                )?),
                (None, Some(subject)) => Ok(db::sessions::delete_subject_sessions(
                    conn,
                    &logout.issuer,
                    subject,
                    &logout.provider,
                )?),
                (None, None) => Ok(Vec::new()),
            }
        })
        .await
}

/// `GET /frontchannel-logout?iss=…&sid=…`: ends that provider session's sessions (without
/// `iss` and `sid`, the browser's own, for a request from idgate's own origin only) and answers
/// an empty page the provider may frame.
async fn frontchannel(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    // A parameter given twice names nothing: nothing is ended.
    let (params, parsed) = match Params::parse(&[req.query_string().as_bytes()]) {
        Ok(params) => (params, true),
        Err(_) => (Params::default(), false),
    };
    let config = state.config.load_full();
    let now = state.clock.now();
    let mut event = request::attempt(&req, &state).event(Event::FrontchannelLogout);
    // Only a configured provider's issuer is believed, and only its origin may frame the page.
    let issuer = params
        .get("iss")
        .map(|i| i.trim_end_matches('/').to_string());
    let provider = issuer
        .as_deref()
        .and_then(|iss| config.providers.iter().find(|p| p.authority() == iss));
    let frame_ancestors = provider
        .and_then(|p| url::Url::parse(p.authority()).ok())
        .map_or_else(
            || "'none'".to_string(),
            |u| u.origin().ascii_serialization(),
        );
    let ended = match (provider, &issuer, params.get("sid")) {
        // An anonymous write: within the address's allowance only.
        (Some(_), Some(_), Some(_))
            if state
                .take_anonymous_write(request::client_ip(&req, &state))
                .is_err() =>
        {
            Ok(Vec::new())
        }
        (Some(provider), Some(issuer), Some(sid)) => {
            event.provider = Some(provider.id.clone());
            let (issuer, sid) = (issuer.clone(), sid.to_string());
            state
                .db
                .write(move |conn| db::sessions::delete_provider_session(conn, &issuer, &sid))
                .await
        }
        // The browser's own session: only from idgate's own pages (a browser says so with
        // `Sec-Fetch-Site: same-origin`); a link elsewhere must not sign people out.
        (_, None, None)
            if parsed
                && req
                    .headers()
                    .get("sec-fetch-site")
                    .is_some_and(|site| site.as_bytes() == b"same-origin") =>
        {
            match request::session_key(&req, &state) {
                Some(id_hash) => {
                    let ended = id_hash.clone();
                    state
                        .db
                        .write(move |conn| db::sessions::delete_session(conn, &id_hash))
                        .await
                        .map(|gone| if gone { vec![ended] } else { Vec::new() })
                }
                None => Ok(Vec::new()),
            }
        }
        // An issuer idgate does not know, half of the pair, or another site's page: nothing.
        _ => Ok(Vec::new()),
    };
    match &ended {
        Ok(ended) => {
            for id_hash in ended {
                state.session_cache.forget(id_hash);
            }
            if !ended.is_empty() {
                event.outcome = Outcome::Success;
                state.db.record(&event, now).await;
            }
        }
        Err(error) => {
            tracing::error!(incident = %event.incident, %error, "front-channel logout failed: database");
        }
    }
    let mut response = if ended.is_ok() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            CONTENT_SECURITY_POLICY,
            format!("default-src 'none'; frame-ancestors {frame_ancestors}"),
        ))
        .content_type("text/html; charset=utf-8")
        .body("<!DOCTYPE html><title>Signed out</title>")
}
