//! The running configuration for administrators (SPEC §2, §5): `GET /identity-config` and
//! `POST /identity-config/reload`, both authenticated by an administrator's session cookie.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Serialize;
use serde_json::json;

use super::answer::{self, Failure, Format};
use super::request::{self, Params};
use super::session::current_session;
use crate::access::{Authentication, DomainRule};
use crate::audit::{self, Event};
use crate::error::new_incident_id;
use crate::identity::IdentityConfig;
use crate::members::Member;
use crate::reload;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/identity-config").route(web::get().to(show)))
        .service(web::resource("/identity-config/reload").route(web::post().to(reload_now)));
}

/// The configuration as shown: secrets are never part of it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigJson<'a> {
    default_authentication: Authentication,
    #[serde(flatten)]
    config: &'a IdentityConfig,
    domains: &'a [DomainRule],
}

#[derive(Template)]
#[template(path = "xml/identity_config.xml")]
struct ConfigXml<'a> {
    default_authentication: Authentication,
    config: &'a IdentityConfig,
    domains: &'a [DomainRule],
    ips: String,
    proxies: String,
}

/// The administrator making the request, or the answer refusing it: 401 without a session, 403
/// for other members, 403 `csrf` for a request that another site's page could have made.
async fn administrator(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    acts: bool,
) -> Result<Member, HttpResponse> {
    let failure = |failure| answer::failure(format, failure, &new_incident_id());
    match current_session(req, state).await {
        Ok(Some((session, _))) if session.member.admin => {
            // Only actions need the origin check: a plain read is no forgery risk (and a typed
            // URL sends no Origin).
            if !acts || request::is_same_origin(req, state) {
                Ok(session.member)
            } else {
                Err(failure(Failure::Csrf))
            }
        }
        Ok(Some(_)) => Err(failure(Failure::Forbidden)),
        Ok(None) => Err(failure(Failure::NoSession)),
        Err(error) => {
            tracing::error!(%error, "session check failed: database");
            Err(failure(Failure::Unavailable))
        }
    }
}

/// `GET /identity-config[?reload=true]`.
async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let format = Format::of(&req).data();
    let wants_reload = Params::parse(&[req.query_string().as_bytes()])
        .ok()
        .is_some_and(|p| p.get("reload") == Some("true"));
    let admin = match administrator(&req, &state, format, wants_reload).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    if wants_reload && let Err(refusal) = do_reload(&req, &state, format, &admin).await {
        return refusal;
    }
    let config = state.config.load_full();
    let domains = config.domains.rules();
    let default_authentication = config.domains.default_authentication();
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    match format {
        Format::Xml => {
            let join = |nets: &[ipnet::IpNet]| {
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            answer::xml(
                builder,
                &ConfigXml {
                    default_authentication,
                    config: &config,
                    domains,
                    ips: join(&config.properties.api_account_ips),
                    proxies: join(&config.properties.trusted_proxies),
                },
            )
        }
        _ => builder.json(ConfigJson {
            default_authentication,
            config: &config,
            domains,
        }),
    }
}

/// `POST /identity-config/reload`.
async fn reload_now(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let format = Format::of(&req).data();
    let admin = match administrator(&req, &state, format, true).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    match do_reload(&req, &state, format, &admin).await {
        Ok(providers) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({ "status": "reloaded", "providers": providers })),
        Err(refusal) => refusal,
    }
}

/// Reloads for an administrator; a refused file answers 400 with every problem.
async fn do_reload(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
    admin: &Member,
) -> Result<usize, HttpResponse> {
    let mut event = request::attempt(req, state).event(Event::ConfigReload);
    event.member_id = Some(admin.id);
    event.email = Some(audit::clean(&admin.email, 254));
    let incident = event.incident.clone();
    reload::reload(state, event).await.map_err(|errors| {
        let problems: Vec<String> = errors.to_string().lines().map(str::to_string).collect();
        match format {
            Format::Json => HttpResponse::BadRequest().json(json!({
                "error": {
                    "id": "invalid_config",
                    "message": "The configuration file is not valid; the running configuration stays in force.",
                    "incident": incident,
                    "problems": problems,
                }
            })),
            _ => answer::failure(format, Failure::InvalidConfig, &incident),
        }
    })
}
