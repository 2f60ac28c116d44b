//! `GET|POST /authenticate` and `POST /logout` (SPEC §4): sign-in with an ID token, one-time
//! authentication codes for registered document apps, and sign-out.

use actix_web::http::Method;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::answer::{self, Failure, Format};
use super::cors;
use super::request::{self, Params};
use crate::audit::{self, Event, Outcome};
use crate::error::new_incident_id;
use crate::flows;
use crate::members::StoreError;
use crate::reason::Reason;
use crate::sessions;
use crate::signin::{self, Expected, SignInError, SignedIn};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/authenticate")
            .route(web::get().to(authenticate))
            .route(web::post().to(authenticate))
            .route(web::method(Method::OPTIONS).to(preflight)),
    )
    .service(web::resource("/logout").route(web::post().to(logout)));
}

#[derive(askama::Template)]
#[template(path = "xml/auth_code.xml")]
struct AuthCodeXml<'a> {
    code: &'a str,
    expires_in: i64,
}

async fn preflight(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    cors::preflight(&req, &state, "GET, POST")
}

async fn authenticate(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mut response = dispatch(&req, &body, &state).await;
    cors::allow_origin(&req, &state, &mut response);
    response
}

async fn dispatch(req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    let format = Format::of(req);
    let is_post = req.method() == Method::POST;
    let query = req.query_string().as_bytes();
    let params = if is_post {
        Params::parse(&[query, body])
    } else {
        Params::parse(&[query])
    };
    let params = match params {
        Ok(params) => params,
        Err(failure) => return fail(req, state, format, None, failure).await,
    };
    let action = params.get("action");
    let failure = |failure| fail(req, state, format, action, failure);
    if request::has_token_in_url(req) {
        return failure(Failure::TokenInUrl).await;
    }
    let signs_in = matches!(action, Some("login" | "code"));
    if signs_in && !request::is_from_trusted_page(req, state) {
        return failure(Failure::Csrf).await;
    }
    match (action, is_post) {
        (Some("logout"), _) => sign_out(req, state, format).await,
        (Some("login"), _) if params.get("auth_code").is_some() => {
            redeem(req, state, format, &params, is_post).await
        }
        // Tokens never travel in URLs, where logs and browser history keep them.
        (Some("login" | "code"), false) => failure(Failure::MethodNotAllowed).await,
        (Some("login"), true) => match params.get("id_token") {
            Some(token) => sign_in(req, state, format.data(), token).await,
            None => failure(Failure::MissingParameter).await,
        },
        (Some("code"), true) => match (params.get("id_token"), params.get("client_id")) {
            (Some(token), Some(client_id)) => {
                issue_code(req, state, format.data(), token, client_id).await
            }
            _ => failure(Failure::MissingParameter).await,
        },
        (Some(_), _) => failure(Failure::UnknownAction).await,
        (None, _) => failure(Failure::MissingParameter).await,
    }
}

/// Answers a request refused before any token was looked at, and writes it to the security
/// log like every other attempt.
async fn fail(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    action: Option<&str>,
    failure: Failure,
) -> HttpResponse {
    let kind = match action {
        Some("logout") => Event::Logout,
        Some("code") => Event::CodeIssued,
        _ => Event::Login,
    };
    let mut event = request::attempt(req, state).event(kind);
    event.reason = Some(failure.id().to_string());
    audit::record(&state.db, &event, state.clock.now()).await;
    answer::failure(format, failure, &event.incident)
}

fn refused(format: Format, error: SignInError) -> HttpResponse {
    match error {
        SignInError::Refused { reason, incident } => {
            answer::failure(format, Failure::Refused(reason), &incident)
        }
        SignInError::Unavailable { incident } => {
            answer::failure(format, Failure::Unavailable, &incident)
        }
    }
}

/// A session answer with its cookie.
pub fn with_session(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    signed_in: SignedIn,
) -> HttpResponse {
    let cookie = state
        .settings
        .cookie
        .session_cookie(signed_in.session_id, request::is_https(req, state));
    let mut builder = HttpResponse::Ok();
    builder.cookie(cookie);
    answer::session(format, builder, &signed_in.view)
}

async fn sign_in(req: &HttpRequest, state: &AppState, format: Format, token: &str) -> HttpResponse {
    let attempt = request::attempt(req, state);
    match signin::sign_in(state, token, Expected::default(), &attempt).await {
        Ok(signed_in) => with_session(req, state, format, signed_in),
        Err(error) => refused(format, error),
    }
}

/// `action=code`: a registered client trades an ID token for a one-time authentication code.
async fn issue_code(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    token: &str,
    client_id: &str,
) -> HttpResponse {
    let config = state.config.load_full();
    let attempt = request::attempt(req, state);
    let Some(client) = config.client(client_id) else {
        let mut event = attempt.event(Event::CodeIssued);
        event.reason = Some(Reason::UnknownClient.code().into());
        audit::record(&state.db, &event, state.clock.now()).await;
        return answer::failure(
            format,
            Failure::Refused(Reason::UnknownClient),
            &event.incident,
        );
    };
    match signin::issue_code(state, token, &client.id, &attempt).await {
        Ok((code, expires_in)) => match format {
            Format::Xml => {
                let mut builder = HttpResponse::Ok();
                builder.insert_header(("Cache-Control", "no-store"));
                answer::xml(
                    builder,
                    &AuthCodeXml {
                        code: &code,
                        expires_in,
                    },
                )
            }
            _ => HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(json!({ "authCode": code, "expiresIn": expires_in })),
        },
        Err(error) => refused(format, error),
    }
}

/// `action=login&auth_code=…`: the browser trades a code for a session. By `GET` (a browser
/// sent here by the app) the answer is a redirect to `redirect` (a path, or a URL on the
/// code's client's website) or `/`, and failures are pages; by `POST` it is the session.
async fn redeem(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    params: &Params,
    is_post: bool,
) -> HttpResponse {
    let Some(code) = params.get("auth_code") else {
        return answer::failure(format, Failure::MissingParameter, &new_incident_id());
    };
    let config = state.config.load_full();
    let attempt = request::attempt(req, state);
    let format = if is_post { format.data() } else { Format::Html };
    match signin::redeem_code(state, code, params.get("client_id"), &attempt).await {
        Ok((signed_in, client_id)) if !is_post => {
            let website = config.client(&client_id).map(|c| c.website.clone());
            let target = params
                .get("redirect")
                .and_then(|r| flows::safe_redirect_among(r, website.as_deref()))
                .unwrap_or_else(|| "/".into());
            let cookie = state
                .settings
                .cookie
                .session_cookie(signed_in.session_id, request::is_https(req, state));
            HttpResponse::SeeOther()
                .cookie(cookie)
                .insert_header((LOCATION, target))
                .insert_header(("Cache-Control", "no-store"))
                .finish()
        }
        Ok((signed_in, _)) => with_session(req, state, format, signed_in),
        Err(error) => refused(format, error),
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
    let attempt = request::attempt(req, state);
    let mut event = attempt.event(Event::Logout);
    event.outcome = Outcome::Success;
    let Some(id) = request::session_id(req, state) else {
        let mut builder = HttpResponse::Ok();
        builder.cookie(removal);
        return answer::signed_out(format, builder);
    };
    let id_hash = sessions::hash_id(&id);
    state.session_cache.forget(&id_hash);
    let now = state.clock.now();
    let logged = event.clone();
    let ended = state
        .db
        .write(move |conn| {
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
