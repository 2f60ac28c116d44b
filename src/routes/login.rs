//! The browser flow: `GET /login` (the sign-in page), `GET /login/{provider}` (start
//! the authorization-code flow), `GET|POST /callback` (finish it), and `GET /` (who am I).

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::cookies::{flow_cookie, flow_start_cookie, new_session};
use super::failure::{Failure, Refusal, settle};
use super::render::{self, Format};
use super::request::{self, Params};
use super::session::current_session;
use crate::audit::{self, Event};
use crate::db::flows::{StoredFlow, insert_flow, take_flow};
use crate::flows::{self, NewFlow};
use crate::identity::{IdentityConfig, Provider};
use crate::ids::{hash_id, is_plausible_id, random_token};
use crate::members::Email;
use crate::oidc::exchange::{ExchangeError, Tokens, exchange_code};
use crate::oidc::keys::KeyError;
use crate::reason::Reason;
use crate::signin::{self, Expected};
use crate::state::AppState;

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
    /// What the email step says, if anything.
    notice: Option<&'a str>,
    /// The address typed, shown again in the field.
    email: &'a str,
    /// Kept through the email step.
    redirect: Option<&'a str>,
    /// The address does not sign in with single sign-on: no providers are offered.
    no_sso: bool,
    /// The path idgate serves under.
    base: &'a str,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    base: &'a str,
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

/// `/login/{provider}` with a parameter to forward to the provider (`login_hint`, `prompt`) and
/// the `redirect` to keep, encoded.
fn provider_href(
    base: &str,
    provider: &str,
    redirect: Option<&str>,
    forwarded: Option<(&str, &str)>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some((name, value)) = forwarded {
        query.append_pair(name, value);
    }
    if let Some(redirect) = redirect {
        query.append_pair("redirect", redirect);
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{base}/login/{provider}")
    } else {
        format!("{base}/login/{provider}?{query}")
    }
}

/// What the email-first step decided for the address typed.
enum EmailFirst<'c> {
    /// No address given: every provider.
    NotAsked,
    /// Not an address idgate can use.
    Malformed,
    /// The address's domain does not sign in with single sign-on.
    NoSso,
    /// The providers the address's domain may use, with the address as the hint.
    Providers(Vec<&'c Provider>, String),
}

/// `GET /login[?email=E][&redirect=…]`: the sign-in page, or, for an address whose domain may use
/// exactly one provider, straight to it. The answer depends on the domain's rules only, never on
/// whether a member has the address.
async fn sign_in_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let config = state.config.load();
    let base = state.settings.base_path();
    let redirect = redirect_param(&req, &config);
    let email = Params::parse(&[req.query_string().as_bytes()])
        .ok()
        .and_then(|p| p.get("email").map(|e| e.trim().to_string()));
    let step = match email {
        None => EmailFirst::NotAsked,
        Some(text) => match Email::parse(&text) {
            Err(_) => EmailFirst::Malformed,
            Ok(email) => {
                let decision = config.domains.decide(email.domain());
                let allowed: Vec<&Provider> = config
                    .providers
                    .iter()
                    .filter(|p| decision.allows_provider(&p.id))
                    .collect();
                if allowed.is_empty() {
                    EmailFirst::NoSso
                } else {
                    EmailFirst::Providers(allowed, email.as_str().to_string())
                }
            }
        },
    };
    let link = |p: &Provider, hint: Option<&str>| ProviderLink {
        title: p.title.clone(),
        description: p.description.clone(),
        href: provider_href(
            base,
            &p.id,
            redirect.as_deref(),
            hint.map(|h| ("login_hint", h)),
        ),
    };
    let (providers, notice, email) = match &step {
        EmailFirst::Providers(allowed, email) if allowed.len() == 1 => {
            let hint = Some(("login_hint", email.as_str()));
            let href = provider_href(base, &allowed[0].id, redirect.as_deref(), hint);
            return render::see_other(&href).finish();
        }
        EmailFirst::Providers(allowed, email) => (
            allowed.iter().map(|p| link(p, Some(email))).collect(),
            Some("Choose the account you sign in with."),
            email.as_str(),
        ),
        EmailFirst::NoSso => (
            Vec::new(),
            Some("This address does not sign in here with single sign-on."),
            "",
        ),
        EmailFirst::Malformed => (
            config.providers.iter().map(|p| link(p, None)).collect(),
            Some("That is not an email address. Please check it and try again."),
            "",
        ),
        EmailFirst::NotAsked => (
            config.providers.iter().map(|p| link(p, None)).collect(),
            None,
            "",
        ),
    };
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    render::page(
        builder,
        &SignInPage {
            providers,
            portal: config.portal.as_ref(),
            notice,
            email,
            redirect: redirect.as_deref(),
            no_sso: matches!(step, EmailFirst::NoSso),
            base,
        },
    )
}

/// `GET /login/{provider}`: failures are pages, and in the security log.
async fn start(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let started = start_flow(&req, &path, &state).await;
    settle(started, &req, &state, Event::Login, Format::Html).await
}

/// Starts the authorization-code flow: stores the flow, binds it to this browser with a
/// cookie, and sends the browser to the provider.
async fn start_flow(
    req: &HttpRequest,
    provider_id: &str,
    state: &AppState,
) -> Result<HttpResponse, Refusal> {
    let config = state.config.load_full();
    let provider = config.provider(provider_id).ok_or(Failure::NotFound)?;
    // A flow start stores a row for anybody: an anonymous write. Counted here, it is not counted
    // again when it fails and its refusal is logged.
    state
        .take_anonymous_write(request::client_ip(req, state))
        .map_err(Refusal::rate_limited)?;
    let base = request::public_base(req, state).ok_or_else(|| {
        Refusal::from(Failure::MissingParameter)
            .detail("no usable Host header; set --public-url")
            .counted()
    })?;
    let fails = |failure: Failure, detail: String| {
        Refusal::from(failure)
            .detail(detail)
            .provider(Some(provider.id.clone()))
            .counted()
    };
    let keys = state.keys.keys(provider).await.map_err(|error| {
        let failure = match error {
            KeyError::IssuerMismatch { .. } => Failure::Refused(Reason::UnknownIssuer),
            KeyError::Fetch(_) => Failure::Unavailable,
        };
        fails(failure, error.to_string())
    })?;
    let redirect_uri = format!("{base}/callback");
    let flow = NewFlow::generate();
    let secure = request::is_https(req, state);
    // One browser value for all of this browser's flows, so that two tabs can sign in at once.
    let browser = req
        .cookie(flows::flow_cookie_name(
            secure,
            state.settings.base_path().is_empty(),
        ))
        .map(|c| c.value().to_string())
        .filter(|v| is_plausible_id(v))
        .unwrap_or_else(random_token);
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let hints = flows::forwarded_params(query.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let url = flows::authorization_url(
        &keys.metadata.authorization_endpoint,
        provider,
        &flow,
        &redirect_uri,
        state.settings.response_mode,
        &hints,
    )
    .map_err(|e| {
        fails(
            Failure::Unavailable,
            format!("bad authorization_endpoint: {e}"),
        )
    })?;
    let stored = StoredFlow {
        state_hash: hash_id(&flow.state),
        browser_hash: hash_id(&browser),
        provider: provider.id.clone(),
        nonce: flow.nonce.clone(),
        code_verifier: flow.code_verifier.clone(),
        redirect_uri,
        redirect: redirect_param(req, &config),
        expires_at: state.clock.now().saturating_add(flows::FLOW_LIFETIME_SECS),
    };
    state
        .db
        .write(move |conn| insert_flow(conn, &stored))
        .await
        .map_err(|error| fails(Failure::Unavailable, error.to_string()))?;
    let (mode, path) = (state.settings.response_mode, state.settings.base_path());
    let mut response = HttpResponse::Found();
    response.cookie(flow_cookie(browser.clone(), secure, mode, path));
    // The value also goes to the flow starts, so that the browser's next one keeps it.
    if let Some(cookie) = flow_start_cookie(browser, secure, path) {
        response.cookie(cookie);
    }
    Ok(response
        .insert_header((LOCATION, url.to_string()))
        .insert_header(("Cache-Control", "no-store"))
        .finish())
}

/// `GET|POST /callback`: failures are pages, and in the security log.
async fn callback(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let finished = finish_flow(&req, &body, &state).await;
    settle(finished, &req, &state, Event::Login, Format::Html).await
}

/// Finishes the flow: the state must be a live flow of this browser, the answer must come
/// from the provider the flow was started for, and the ID token then passes every rule.
async fn finish_flow(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<HttpResponse, Refusal> {
    let is_post = req.method() == actix_web::http::Method::POST;
    let query = req.query_string().as_bytes();
    let params = if is_post {
        Params::parse(&[query, body])
    } else {
        Params::parse(&[query])
    }?;
    if request::has_token_in_url(req) {
        return Err(Failure::TokenInUrl.into());
    }
    let bad_state = |detail: &str| Refusal::from(Reason::BadState).detail(detail);
    let state_param = params.get("state").ok_or_else(|| bad_state("no state"))?;
    let state_hash = hash_id(state_param);
    // Only the browser that started the flow may finish it (or use it up).
    let browser_hash = req
        .cookie(flows::flow_cookie_name(
            request::is_https(req, state),
            state.settings.base_path().is_empty(),
        ))
        .map(|c| hash_id(c.value()))
        .ok_or_else(|| bad_state("no flow cookie: the flow was started in another browser"))?;
    let flow = state
        .db
        .write(move |conn| take_flow(conn, &state_hash, &browser_hash))
        .await
        .map_err(|error| Refusal::from(Failure::Unavailable).detail(error.to_string()))?
        .ok_or_else(|| bad_state("unknown or used state, or another browser's"))?;
    // From here on, every refusal names the flow's provider.
    let fails = |failure: Failure, detail: &str| {
        Refusal::from(failure)
            .detail(detail)
            .provider(Some(flow.provider.clone()))
    };
    if state.clock.now() >= flow.expires_at {
        return Err(fails(Failure::Refused(Reason::BadState), "expired flow"));
    }
    let config = state.config.load_full();
    let provider = config.provider(&flow.provider).ok_or_else(|| {
        fails(
            Failure::Refused(Reason::BadState),
            "the provider is no longer configured",
        )
    })?;
    if let Some(error) = params.get("error") {
        let detail = format!("the provider answered error={}", audit::clean(error, 64));
        return Err(fails(Failure::Refused(Reason::ProviderError), &detail));
    }
    let keys = state
        .keys
        .keys(provider)
        .await
        .map_err(|error| fails(Failure::Unavailable, &error.to_string()))?;
    // RFC 9207: an `iss` in the response names the provider that sent it (mix-up defence).
    let iss_ok = match params.get("iss") {
        Some(iss) => iss == keys.metadata.issuer,
        None => !keys.metadata.iss_parameter_supported,
    };
    if !iss_ok {
        return Err(fails(
            Failure::Refused(Reason::UnknownIssuer),
            "the response's iss is not the flow's provider",
        ));
    }
    let tokens = match (params.get("code"), params.get("id_token")) {
        (Some(code), _) => {
            let endpoint =
                keys.metadata.token_endpoint.as_deref().ok_or_else(|| {
                    fails(Failure::Unavailable, "the provider has no token endpoint")
                })?;
            exchange_code(
                state.keys.fetcher(),
                endpoint,
                provider,
                code,
                &flow.code_verifier,
                &flow.redirect_uri,
            )
            .await
            .map_err(|error| {
                let failure = match error {
                    ExchangeError::Rejected(_) => Failure::Refused(Reason::InvalidCode),
                    ExchangeError::Unavailable(_) => Failure::Unavailable,
                };
                fails(failure, &error.to_string())
            })?
        }
        // An ID token straight from the provider only by form_post, never in a URL.
        (None, Some(token)) if is_post => Tokens {
            id_token: token.to_string(),
            access_token: params.get("access_token").map(str::to_string),
        },
        _ => return Err(fails(Failure::MissingParameter, "no code")),
    };
    let attempt = request::attempt(req, state);
    let expected = Expected {
        nonce: Some(&flow.nonce),
        provider: Some(&flow.provider),
        access_token: tokens.access_token.as_deref(),
    };
    let signed_in = signin::sign_in(state, &tokens.id_token, expected, &attempt)
        .await
        .map_err(|error| {
            let another_account = provider_href(
                state.settings.base_path(),
                &flow.provider,
                flow.redirect.as_deref(),
                Some(("prompt", "select_account")),
            );
            Refusal::from(error).another_account_at(another_account)
        })?;
    let target = flow
        .redirect
        .unwrap_or_else(|| format!("{}/", state.settings.base_path()));
    Ok(render::see_other(&target)
        .cookie(new_session(req, state, signed_in.session_id))
        .finish())
}

/// `GET /`: who is signed in, or the sign-in page.
async fn home(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Refusal> {
    let Some((session, _)) = current_session(&req, &state).await.map_err(|error| {
        Refusal::from(error)
            .format(Format::Html)
            .under(state.settings.base_path())
    })?
    else {
        return Ok(render::see_other(&format!("{}/login", state.settings.base_path())).finish());
    };
    let config = state.config.load_full();
    let provider = config.provider(&session.provider);
    let title = provider.map_or(session.provider.as_str(), |p| p.title.as_str());
    // Its sign-out button may go on to the provider's end-session endpoint.
    let end_session = super::authenticate::end_session_origin(&state, &session.provider).await;
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    Ok(render::page_with_form_targets(
        builder,
        &HomePage {
            base: state.settings.base_path(),
            email: &session.member.email,
            provider: title,
        },
        end_session.as_deref(),
    ))
}
