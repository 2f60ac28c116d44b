//! `GET /session` (who is this session?) and `GET /auth` (forward-auth for nginx
//! `auth_request`, Traefik ForwardAuth and Caddy `forward_auth`), SPEC §5.

use actix_web::http::header::HeaderValue;
use actix_web::{HttpRequest, HttpResponse, web};

use super::answer::{self, Failure, Format, SessionView};
use super::{cors, request};
use crate::error::new_incident_id;
use crate::members::StoreError;
use crate::metrics::CheckLabels;
use crate::sessions::{self, Session};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/session")
            .route(web::get().to(session))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
    )
    .service(web::resource("/auth").route(web::route().to(auth)));
}

/// The browser's live session, if any. Activity slides the idle timeout (written at most once
/// per throttle interval); a session found timed out is removed.
pub async fn current_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<(Session, i64)>, StoreError> {
    let Some(id) = request::session_id(req, state) else {
        return Ok(None);
    };
    let id_hash = sessions::hash_id(&id);
    let now = state.clock.now();
    let idle_secs = i64::from(state.config.load().properties.session_timeout) * 60;
    state
        .db
        .run(move |conn| {
            let Some(mut session) = sessions::find_session(conn, &id_hash)? else {
                return Ok(None);
            };
            if !session.is_live(now, idle_secs) {
                if now >= session.ends_at(idle_secs) {
                    sessions::delete_session(conn, &id_hash)?;
                }
                return Ok(None);
            }
            if session.needs_touch(now, idle_secs) {
                sessions::touch_session(conn, &id_hash, now)?;
                session.last_seen_at = now;
            }
            let ends_at = session.ends_at(idle_secs);
            Ok(Some((session, ends_at)))
        })
        .await
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

async fn session(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let format = Format::of(&req);
    let mut response = match measured_session(&req, &state).await {
        Ok(Some((session, ends_at))) => answer::session(
            format,
            HttpResponse::Ok(),
            &SessionView {
                member: session.member,
                provider: session.provider,
                ends_at,
            },
        ),
        Ok(None) => answer::failure(format, Failure::NoSession, &new_incident_id()),
        Err(error) => unavailable(format, &error),
    };
    cors::allow_origin(&req, &state, &mut response);
    response
}

/// CORS preflight for `/session`: answered for registered clients' websites only.
async fn preflight(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    cors::preflight(&req, &state, "GET")
}

async fn auth(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match measured_session(&req, &state).await {
        Ok(Some((session, _))) => {
            let member = session.member;
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
        Ok(None) => HttpResponse::Unauthorized()
            .insert_header(("Cache-Control", "no-store"))
            .finish(),
        Err(error) => unavailable(Format::Json, &error),
    }
}

fn unavailable(format: Format, error: &StoreError) -> HttpResponse {
    let incident = new_incident_id();
    tracing::error!(%incident, %error, "session check failed: database");
    answer::failure(format, Failure::Unavailable, &incident)
}
