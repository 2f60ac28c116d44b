//! `GET|POST /authenticate` and `POST /logout`: sign-in with an ID token, one-time
//! authentication codes for registered document apps, and sign-out.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use serde_json::json;

use super::cookies::{new_session, removal_cookie};
use super::cors;
use super::failure::{Failure, Refusal, settle};
use super::render::{self, Format};
use super::request::{self, Params};
use crate::audit::{Event, Outcome};
use crate::db::{self, StoreError};
use crate::flows;
use crate::reason::Reason;
use crate::signin::{self, Expected, SignedIn};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/authenticate")
            .route(web::get().to(authenticate))
            .route(web::post().to(authenticate))
            .route(web::method(Method::OPTIONS).to(preflight)),
    )
    .service(
        web::resource("/logout")
            .route(web::post().to(logout))
            .route(web::get().to(logout_page)),
    )
    .service(web::resource("/signed-out").route(web::get().to(signed_out)));
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
    let mut response = dispatch(&req, &body, &state)
        .await
        .unwrap_or_else(|refusal| refusal.error_response());
    cors::allow_origin(&req, &state, &mut response);
    response
}

/// Every refusal is in the security log, as an event of the action asked for.
async fn dispatch(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<HttpResponse, Refusal> {
    let format = Format::of(req);
    let is_post = req.method() == Method::POST;
    let query = req.query_string().as_bytes();
    let params = if is_post {
        Params::parse(&[query, body])
    } else {
        Params::parse(&[query])
    };
    let (answer, kind) = match params {
        Ok(params) => {
            let kind = match params.get("action") {
                Some("logout") => Event::Logout,
                Some("code") => Event::CodeIssued,
                _ => Event::Login,
            };
            (act(req, state, format, &params, is_post).await, kind)
        }
        Err(failure) => (Err(failure.into()), Event::Login),
    };
    settle(answer, req, state, kind, format).await
}

/// Does what `action` asks.
async fn act(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    params: &Params,
    is_post: bool,
) -> Result<HttpResponse, Refusal> {
    let action = params.get("action");
    if request::has_token_in_url(req) {
        return Err(Failure::TokenInUrl.into());
    }
    let signs_in = matches!(action, Some("login" | "code"));
    if signs_in && !request::is_from_trusted_page(req, state) {
        return Err(Failure::Csrf.into());
    }
    match (action, is_post) {
        (Some("logout"), _) => sign_out(req, state, format).await,
        (Some("login"), _) if params.get("auth_code").is_some() => {
            redeem(req, state, format, params, is_post).await
        }
        // Tokens never travel in URLs, where logs and browser history keep them.
        (Some("login" | "code"), false) => Err(Failure::MethodNotAllowed.into()),
        (Some("login"), true) => {
            let token = params.get("id_token").ok_or(Failure::MissingParameter)?;
            sign_in(req, state, format.data(), token, params).await
        }
        (Some("code"), true) => match (params.get("id_token"), params.get("client_id")) {
            (Some(token), Some(client_id)) => {
                issue_code(req, state, format.data(), token, client_id, params).await
            }
            _ => Err(Failure::MissingParameter.into()),
        },
        (Some(_), _) => Err(Failure::UnknownAction.into()),
        (None, _) => Err(Failure::MissingParameter.into()),
    }
}

/// A session answer with its cookie.
fn with_session(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    signed_in: SignedIn,
) -> HttpResponse {
    let mut builder = HttpResponse::Ok();
    builder.cookie(new_session(req, state, signed_in.session_id));
    render::session(format, builder, &signed_in.view)
}

/// What a direct post may add beside the ID token: the access token of the same sign-in, for
/// the userinfo endpoint.
fn direct_post(params: &Params) -> Expected<'_> {
    Expected {
        access_token: params.get("access_token"),
        ..Expected::default()
    }
}

async fn sign_in(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    token: &str,
    params: &Params,
) -> Result<HttpResponse, Refusal> {
    let attempt = request::attempt(req, state);
    let signed_in = signin::sign_in(state, token, direct_post(params), &attempt)
        .await
        .map_err(|e| Refusal::from(e).format(format))?;
    Ok(with_session(req, state, format, signed_in))
}

/// `action=code`: a registered client trades an ID token for a one-time authentication code.
async fn issue_code(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    token: &str,
    client_id: &str,
    params: &Params,
) -> Result<HttpResponse, Refusal> {
    let config = state.config.load_full();
    let attempt = request::attempt(req, state);
    let client = config
        .client(client_id)
        .ok_or_else(|| Refusal::from(Reason::UnknownClient).format(format))?;
    let (code, expires_in) =
        signin::issue_code(state, token, direct_post(params), &client.id, &attempt)
            .await
            .map_err(|e| Refusal::from(e).format(format))?;
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    Ok(match format {
        Format::Xml => render::xml(
            builder,
            &AuthCodeXml {
                code: &code,
                expires_in,
            },
        ),
        _ => builder.json(json!({ "authCode": code, "expiresIn": expires_in })),
    })
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
) -> Result<HttpResponse, Refusal> {
    let code = params.get("auth_code").ok_or(Failure::MissingParameter)?;
    let config = state.config.load_full();
    let attempt = request::attempt(req, state);
    let format = if is_post { format.data() } else { Format::Html };
    let (signed_in, client_id) =
        signin::redeem_code(state, code, params.get("client_id"), &attempt)
            .await
            .map_err(|e| Refusal::from(e).format(format))?;
    if is_post {
        return Ok(with_session(req, state, format, signed_in));
    }
    let website = config.client(&client_id).map(|c| c.website.clone());
    let target = params
        .get("redirect")
        .and_then(|r| flows::safe_redirect_among(r, website.as_deref()))
        .unwrap_or_else(|| format!("{}/", state.settings.base_path()));
    Ok(render::see_other(&target)
        .cookie(new_session(req, state, signed_in.session_id))
        .finish())
}

#[derive(askama::Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    base: &'a str,
}

/// `GET /logout`: a page with a sign-out button (a link may show it; only its POST signs out).
/// As on the home page, the button may go on to the end-session endpoint of the browser's
/// session's provider, which the page's `form-action` must then name. The session is found as
/// the POST finds it (one that has timed out, whose row is still there, signs out at the
/// provider too), and showing the page changes nothing: it neither extends nor ends it. Without
/// a session, or when the database cannot say which, it names none: the sign-out then ends at
/// idgate.
async fn logout_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let provider = match request::session_key(&req, &state) {
        Some(id_hash) => state
            .db
            .run(move |conn| db::sessions::find_session(conn, &id_hash))
            .await
            .ok()
            .flatten()
            .map(|session| session.provider),
        None => None,
    };
    let end_session = match provider {
        Some(provider) => end_session_origin(&state, &provider).await,
        None => None,
    };
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    render::page_with_form_targets(
        builder,
        &LogoutPage {
            base: state.settings.base_path(),
        },
        end_session.as_deref(),
    )
}

/// `GET /signed-out`: where the provider sends people back after signing them out.
async fn signed_out(state: web::Data<AppState>) -> HttpResponse {
    render::signed_out(Format::Html, HttpResponse::Ok(), state.settings.base_path())
}

/// `POST /logout`: refusals (a page another site could have made ask) are in the security log.
async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Refusal> {
    let format = Format::of(&req);
    let answer = sign_out(&req, &state, format).await;
    settle(answer, &req, &state, Event::Logout, format).await
}

/// The end-session endpoint of `provider`, when its discovery document gives one and idgate
/// signs people out there (`providerLogout`, on by default).
async fn end_session_endpoint(
    state: &AppState,
    provider: &crate::identity::Provider,
) -> Option<url::Url> {
    if !provider.provider_logout {
        return None;
    }
    let keys = state.keys.keys(provider).await.ok()?;
    keys.metadata.end_session_url()
}

/// The origin of the end-session endpoint that signing out a session of `provider` goes on to
/// ([`end_session_endpoint`]): what the `form-action` of a page with a sign-out button names.
pub(super) async fn end_session_origin(state: &AppState, provider: &str) -> Option<String> {
    let config = state.config.load_full();
    let endpoint = end_session_endpoint(state, config.provider(provider)?).await?;
    Some(endpoint.origin().ascii_serialization())
}

/// The provider's end-session endpoint (RP-Initiated Logout 1.0) for a session of `provider`,
/// with `id_token_hint`, `client_id`, `post_logout_redirect_uri` (`/signed-out`) and `state`;
/// `None` when the provider offers none, opts out (`providerLogout: false`) or cannot be asked.
async fn provider_logout_url(
    req: &HttpRequest,
    state: &AppState,
    provider: &str,
    id_token: Option<&str>,
) -> Option<String> {
    let config = state.config.load_full();
    let provider = config.provider(provider)?;
    let mut url = end_session_endpoint(state, provider).await?;
    let id_token = id_token.filter(|_| crate::oidc::keys::may_receive_id_token(&url));
    let base = request::public_base(req, state)?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(id_token) = id_token {
            query.append_pair("id_token_hint", id_token);
        }
        query
            .append_pair("client_id", &provider.client_id)
            .append_pair("post_logout_redirect_uri", &format!("{base}/signed-out"))
            .append_pair("state", &crate::ids::random_token());
    }
    Some(url.to_string())
}

/// Ends the browser's session, if any, and always clears the cookie. Answers 503 (still
/// clearing the cookie) only when the database could not be told. A sign-out asked by a page of
/// another site is refused (`Csrf`), whichever endpoint it came to.
async fn sign_out(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
) -> Result<HttpResponse, Refusal> {
    if !request::is_sign_out_from_trusted_page(req, state) {
        return Err(Failure::Csrf.into());
    }
    let removal = removal_cookie(&state.settings.cookie, request::is_https(req, state));
    let attempt = request::attempt(req, state);
    let mut event = attempt.event(Event::Logout);
    event.outcome = Outcome::Success;
    let mut builder = HttpResponse::Ok();
    builder.cookie(removal.clone());
    let Some(id_hash) = request::session_key(req, state) else {
        return Ok(render::signed_out(
            format,
            builder,
            state.settings.base_path(),
        ));
    };
    state.session_cache.forget(&id_hash);
    let now = state.clock.now();
    let logged = event.clone();
    let ended = state
        .db
        .write(move |conn| {
            let Some(session) = db::sessions::find_session(conn, &id_hash)? else {
                return Ok::<_, StoreError>(None);
            };
            let id_token = db::sessions::take_session_id_token(conn, &id_hash)?;
            let mut logged = logged.clone();
            logged.member_id = Some(session.member.id);
            logged.provider = Some(session.provider.clone());
            logged.email = Some(session.member.email.clone());
            db::audit::insert_event(conn, &logged, now)?;
            Ok(Some((logged, id_token)))
        })
        .await
        .map_err(|error| {
            Refusal::from(error)
                .format(format)
                .clearing(removal.clone())
        })?;
    let Some((logged, id_token)) = ended else {
        return Ok(render::signed_out(
            format,
            builder,
            state.settings.base_path(),
        ));
    };
    logged.trace();
    // A person in a browser signs out at the provider too, when it offers it.
    if format == Format::Html
        && let Some(provider) = logged.provider.as_deref()
        && let Some(url) = provider_logout_url(req, state, provider, id_token.as_deref()).await
    {
        return Ok(render::see_other(&url).cookie(removal).finish());
    }
    Ok(render::signed_out(
        format,
        builder,
        state.settings.base_path(),
    ))
}
