//! The browser flow (SPEC §4): `GET /login` (the sign-in page), `GET /login/{provider}` (start
//! the authorization-code flow), `GET|POST /callback` (finish it), and `GET /` (who am I).

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::answer::{self, Failure, Format};
use super::request::{self, Params};
use super::session::current_session;
use crate::audit::{self, Event, SecurityEvent};
use crate::flows::{self, NewFlow, StoredFlow};
use crate::identity::IdentityConfig;
use crate::oidc::exchange::{ExchangeError, exchange_code};
use crate::oidc::keys::KeyError;
use crate::reason::Reason;
use crate::sessions;
use crate::signin::{self, Expected, SignInError};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(home)))
        .service(web::resource("/login").route(web::get().to(sign_in_page)))
        .service(web::resource("/login/{provider}").route(web::get().to(start)))
        .service(
            web::resource("/callback")
                .route(web::get().to(callback))
                .route(web::post().to(callback)),
        );
}

struct ProviderLink {
    title: String,
    description: Option<String>,
    href: String,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    providers: Vec<ProviderLink>,
    portal: Option<&'a crate::identity::Portal>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    email: &'a str,
    provider: &'a str,
}

/// The checked `redirect` parameter of a request, if any.
fn redirect_param(req: &HttpRequest, config: &IdentityConfig) -> Option<String> {
    Params::parse(&[req.query_string().as_bytes()])
        .ok()?
        .get("redirect")
        .and_then(|r| flows::safe_redirect(r, config))
}

async fn sign_in_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let config = state.config.load();
    let redirect = redirect_param(&req, &config);
    let providers = config
        .providers
        .iter()
        .map(|p| {
            let mut href = format!("/login/{}", p.id);
            if let Some(redirect) = &redirect {
                let encoded: String =
                    url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect();
                href.push_str("?redirect=");
                href.push_str(&encoded);
            }
            ProviderLink {
                title: p.title.clone(),
                description: p.description.clone(),
                href,
            }
        })
        .collect();
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    answer::page(
        builder,
        &SignInPage {
            providers,
            portal: config.portal.as_ref(),
        },
    )
}

/// A failure shown as a page; the reason goes to the security log under the page's incident.
async fn fail_page(
    req: &HttpRequest,
    state: &AppState,
    failure: Failure,
    detail: Option<String>,
    provider: Option<String>,
) -> HttpResponse {
    let mut event: SecurityEvent = request::attempt(req, state).event(Event::Login);
    event.reason = Some(failure.id().to_string());
    event.provider = provider;
    if let Some(detail) = detail {
        tracing::info!(target: "idgate::security", incident = %event.incident, %detail, "refusal detail");
    }
    audit::record(&state.db, &event, state.clock.now()).await;
    answer::failure(Format::Html, failure, &event.incident)
}

/// Starts the authorization-code flow: stores the flow, binds it to this browser with a
/// cookie, and sends the browser to the provider.
async fn start(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let config = state.config.load_full();
    let Some(provider) = config.provider(&path) else {
        return fail_page(&req, &state, Failure::NotFound, None, None).await;
    };
    let Some(base) = request::public_base(&req, &state) else {
        return fail_page(
            &req,
            &state,
            Failure::MissingParameter,
            Some("no usable Host header; set --public-url".into()),
            None,
        )
        .await;
    };
    let keys = match state.keys.keys(provider).await {
        Ok(keys) => keys,
        Err(error) => {
            let failure = match error {
                KeyError::IssuerMismatch { .. } => Failure::Refused(Reason::UnknownIssuer),
                KeyError::Fetch(_) => Failure::Unavailable,
            };
            return fail_page(
                &req,
                &state,
                failure,
                Some(error.to_string()),
                Some(provider.id.clone()),
            )
            .await;
        }
    };
    let redirect_uri = format!("{base}/callback");
    let flow = NewFlow::generate();
    let secure = request::is_https(&req, &state);
    // One browser value for all of this browser's flows, so that two tabs can sign in at once.
    let browser = req
        .cookie(flows::flow_cookie_name(secure))
        .map(|c| c.value().to_string())
        .filter(|v| sessions::is_plausible_id(v))
        .unwrap_or_else(sessions::random_token);
    let url = match flows::authorization_url(
        &keys.metadata.authorization_endpoint,
        provider,
        &flow,
        &redirect_uri,
        state.settings.response_mode,
    ) {
        Ok(url) => url,
        Err(e) => {
            return fail_page(
                &req,
                &state,
                Failure::Unavailable,
                Some(format!("bad authorization_endpoint: {e}")),
                Some(provider.id.clone()),
            )
            .await;
        }
    };
    let stored = StoredFlow {
        state_hash: sessions::hash_id(&flow.state),
        browser_hash: sessions::hash_id(&browser),
        provider: provider.id.clone(),
        nonce: flow.nonce.clone(),
        code_verifier: flow.code_verifier.clone(),
        redirect_uri,
        redirect: redirect_param(&req, &config),
        expires_at: state.clock.now().saturating_add(flows::FLOW_LIFETIME_SECS),
    };
    if let Err(error) = state
        .db
        .write(move |conn| flows::insert_flow(conn, &stored))
        .await
    {
        return fail_page(
            &req,
            &state,
            Failure::Unavailable,
            Some(error.to_string()),
            Some(provider.id.clone()),
        )
        .await;
    }
    HttpResponse::Found()
        .cookie(flows::flow_cookie(
            browser,
            secure,
            state.settings.response_mode,
        ))
        .insert_header((LOCATION, url.to_string()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// Finishes the flow: the state must be a live flow of this browser, the answer must come
/// from the provider the flow was started for, and the ID token then passes every rule.
async fn callback(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let is_post = req.method() == actix_web::http::Method::POST;
    let query = req.query_string().as_bytes();
    let params = match if is_post {
        Params::parse(&[query, &body])
    } else {
        Params::parse(&[query])
    } {
        Ok(params) => params,
        Err(failure) => return fail_page(&req, &state, failure, None, None).await,
    };
    if request::has_token_in_url(&req) {
        return fail_page(&req, &state, Failure::TokenInUrl, None, None).await;
    }
    let Some(state_param) = params.get("state") else {
        return fail_page(
            &req,
            &state,
            Failure::Refused(Reason::BadState),
            Some("no state".into()),
            None,
        )
        .await;
    };
    let state_hash = sessions::hash_id(state_param);
    let flow = match state
        .db
        .write(move |conn| flows::take_flow(conn, &state_hash))
        .await
    {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            return fail_page(
                &req,
                &state,
                Failure::Refused(Reason::BadState),
                Some("unknown or used state".into()),
                None,
            )
            .await;
        }
        Err(error) => {
            return fail_page(
                &req,
                &state,
                Failure::Unavailable,
                Some(error.to_string()),
                None,
            )
            .await;
        }
    };
    let provider_id = Some(flow.provider.clone());
    let browser_matches = req
        .cookie(flows::flow_cookie_name(request::is_https(&req, &state)))
        .is_some_and(|c| sessions::hash_id(c.value()) == flow.browser_hash);
    if !browser_matches || state.clock.now() >= flow.expires_at {
        let detail = if browser_matches {
            "expired flow"
        } else {
            "the flow was started in another browser"
        };
        return fail_page(
            &req,
            &state,
            Failure::Refused(Reason::BadState),
            Some(detail.into()),
            provider_id,
        )
        .await;
    }
    let config = state.config.load_full();
    let Some(provider) = config.provider(&flow.provider) else {
        return fail_page(
            &req,
            &state,
            Failure::Refused(Reason::BadState),
            Some("the provider is no longer configured".into()),
            provider_id,
        )
        .await;
    };
    if let Some(error) = params.get("error") {
        let detail = format!("the provider answered error={}", audit::clean(error, 64));
        return fail_page(
            &req,
            &state,
            Failure::Refused(Reason::ProviderError),
            Some(detail),
            provider_id,
        )
        .await;
    }
    let keys = match state.keys.keys(provider).await {
        Ok(keys) => keys,
        Err(error) => {
            return fail_page(
                &req,
                &state,
                Failure::Unavailable,
                Some(error.to_string()),
                provider_id,
            )
            .await;
        }
    };
    // RFC 9207: an `iss` in the response names the provider that sent it (mix-up defence).
    let iss_ok = match params.get("iss") {
        Some(iss) => iss == keys.metadata.issuer,
        None => !keys.metadata.iss_parameter_supported,
    };
    if !iss_ok {
        return fail_page(
            &req,
            &state,
            Failure::Refused(Reason::UnknownIssuer),
            Some("the response's iss is not the flow's provider".into()),
            provider_id,
        )
        .await;
    }
    let id_token = match (params.get("code"), params.get("id_token")) {
        (Some(code), _) => {
            let Some(endpoint) = keys.metadata.token_endpoint.as_deref() else {
                return fail_page(
                    &req,
                    &state,
                    Failure::Unavailable,
                    Some("the provider has no token endpoint".into()),
                    provider_id,
                )
                .await;
            };
            match exchange_code(
                state.keys.fetcher(),
                endpoint,
                provider,
                code,
                &flow.code_verifier,
                &flow.redirect_uri,
            )
            .await
            {
                Ok(token) => token,
                Err(error) => {
                    let failure = match error {
                        ExchangeError::Rejected(_) => Failure::Refused(Reason::InvalidCode),
                        ExchangeError::Unavailable(_) => Failure::Unavailable,
                    };
                    return fail_page(&req, &state, failure, Some(error.to_string()), provider_id)
                        .await;
                }
            }
        }
        // An ID token straight from the provider only by form_post, never in a URL.
        (None, Some(token)) if is_post => token.to_string(),
        _ => {
            return fail_page(
                &req,
                &state,
                Failure::MissingParameter,
                Some("no code".into()),
                provider_id,
            )
            .await;
        }
    };
    let attempt = request::attempt(&req, &state);
    let expected = Expected {
        nonce: Some(&flow.nonce),
        provider: Some(&flow.provider),
    };
    match signin::sign_in(&state, &id_token, expected, &attempt).await {
        Ok(signed_in) => {
            let cookie = state
                .settings
                .cookie
                .session_cookie(signed_in.session_id, request::is_https(&req, &state));
            HttpResponse::SeeOther()
                .cookie(cookie)
                .insert_header((LOCATION, flow.redirect.unwrap_or_else(|| "/".into())))
                .insert_header(("Cache-Control", "no-store"))
                .finish()
        }
        Err(SignInError::Refused { reason, incident }) => {
            answer::failure(Format::Html, Failure::Refused(reason), &incident)
        }
        Err(SignInError::Unavailable { incident }) => {
            answer::failure(Format::Html, Failure::Unavailable, &incident)
        }
    }
}

/// `GET /`: who is signed in, or the sign-in page.
async fn home(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match current_session(&req, &state).await {
        Ok(Some((session, _))) => {
            let config = state.config.load();
            let provider = config
                .provider(&session.provider)
                .map_or(session.provider.as_str(), |p| p.title.as_str());
            let mut builder = HttpResponse::Ok();
            builder.insert_header(("Cache-Control", "no-store"));
            answer::page(
                builder,
                &HomePage {
                    email: &session.member.email,
                    provider,
                },
            )
        }
        Ok(None) => HttpResponse::SeeOther()
            .insert_header((LOCATION, "/login"))
            .insert_header(("Cache-Control", "no-store"))
            .finish(),
        Err(error) => {
            let incident = crate::error::new_incident_id();
            tracing::error!(%incident, %error, "session check failed: database");
            answer::failure(Format::Html, Failure::Unavailable, &incident)
        }
    }
}
