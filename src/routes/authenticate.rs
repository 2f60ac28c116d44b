//! `GET|POST /authenticate` and `POST /logout` (SPEC §4): direct sign-in with an ID token, and
//! sign-out.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use super::answer::{self, Failure, Format};
use super::request::{self, Params};
use crate::audit::{self, Event, Outcome, SecurityEvent};
use crate::error::new_incident_id;
use crate::members::StoreError;
use crate::sessions;
use crate::signin::{self, SignInError};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/authenticate")
            .route(web::get().to(authenticate))
            .route(web::post().to(authenticate)),
    )
    .service(web::resource("/logout").route(web::post().to(logout)));
}

async fn authenticate(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let format = Format::of(&req);
    let is_post = req.method() == Method::POST;
    let query = req.query_string().as_bytes();
    let params = if is_post {
        Params::parse(&[query, &body])
    } else {
        Params::parse(&[query])
    };
    let params = match params {
        Ok(params) => params,
        Err(failure) => return answer::failure(format, failure, &new_incident_id()),
    };
    match params.get("action") {
        Some("logout") => sign_out(&req, &state, format).await,
        Some("login") if !is_post => {
            // Tokens never travel in URLs, where logs and browser history keep them.
            answer::failure(format, Failure::MethodNotAllowed, &new_incident_id())
        }
        Some("login") => match params.get("id_token") {
            Some(token) => sign_in(&req, &state, format, token).await,
            None => answer::failure(format, Failure::MissingParameter, &new_incident_id()),
        },
        Some(_) => answer::failure(format, Failure::UnknownAction, &new_incident_id()),
        None => answer::failure(format, Failure::MissingParameter, &new_incident_id()),
    }
}

async fn sign_in(req: &HttpRequest, state: &AppState, format: Format, token: &str) -> HttpResponse {
    let attempt = request::attempt(req, &state.config.load());
    match signin::sign_in(state, token, None, &attempt).await {
        Ok(signed_in) => {
            let cookie = state
                .settings
                .cookie
                .session_cookie(signed_in.session_id, request::is_https(req, state));
            let mut builder = HttpResponse::Ok();
            builder.cookie(cookie);
            answer::session(format, builder, &signed_in.view)
        }
        Err(SignInError::Refused { reason, incident }) => {
            answer::failure(format, Failure::Refused(reason), &incident)
        }
        Err(SignInError::Unavailable { incident }) => {
            answer::failure(format, Failure::Unavailable, &incident)
        }
    }
}

async fn logout(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    sign_out(&req, &state, Format::of(&req)).await
}

/// Ends the browser's session, if any, and always clears the cookie. Answers 503 (still
/// clearing the cookie) only when the database could not be told.
async fn sign_out(req: &HttpRequest, state: &AppState, format: Format) -> HttpResponse {
    let removal = state
        .settings
        .cookie
        .removal_cookie(request::is_https(req, state));
    let mut event = SecurityEvent::new(Event::Logout, Outcome::Success, new_incident_id());
    let attempt = request::attempt(req, &state.config.load());
    event.client_ip = attempt.client_ip.map(|ip| ip.to_string());
    event.user_agent = attempt
        .user_agent
        .as_deref()
        .map(|ua| audit::clean(ua, 256));
    let Some(id) = request::session_id(req, state) else {
        let mut builder = HttpResponse::Ok();
        builder.cookie(removal);
        return answer::signed_out(format, builder);
    };
    let id_hash = sessions::hash_id(&id);
    let now = state.clock.now();
    let logged = event.clone();
    let ended = state
        .db
        .run(move |conn| {
            let Some(session) = sessions::find_session(conn, &id_hash)? else {
                return Ok::<_, StoreError>(None);
            };
            sessions::delete_session(conn, &id_hash)?;
            let mut logged = logged;
            logged.member_id = Some(session.member.id);
            logged.provider = Some(session.provider.clone());
            logged.email = Some(session.member.email.clone());
            audit::insert_event(conn, &logged, now)?;
            Ok(Some(logged))
        })
        .await;
    match ended {
        Ok(logged) => {
            if let Some(logged) = logged {
                logged.trace();
            }
            let mut builder = HttpResponse::Ok();
            builder.cookie(removal);
            answer::signed_out(format, builder)
        }
        Err(error) => {
            tracing::error!(incident = %event.incident, %error, "sign-out failed: database");
            let mut response = answer::failure(format, Failure::Unavailable, &event.incident);
            let _ = response.add_cookie(&removal);
            response
        }
    }
}
