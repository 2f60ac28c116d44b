//! The running configuration for administrators: `GET /identity-config` and
//! `POST /identity-config/reload`, both authenticated by an administrator's session cookie.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Serialize;
use serde_json::json;

use super::failure::{Failure, Refusal};
use super::render::{self, Format};
use super::request::{self, Params};
use super::session::current_session;
use crate::access::{Authentication, DomainRule};
use crate::audit::{self, Event};
use crate::identity::IdentityConfig;
use crate::members::Member;
use crate::reload;
use crate::state::AppState;

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

/// The administrator making the request, or the refusal: 401 without a session, 403 for other
/// members, 403 `csrf` for a request that another site's page could have made.
async fn administrator(req: &HttpRequest, state: &AppState, acts: bool) -> Result<Member, Refusal> {
    let (session, _) = current_session(req, state)
        .await?
        .ok_or(Failure::NoSession)?;
    if !session.member.admin {
        return Err(Failure::Forbidden.into());
    }
    // Only actions need the origin check: a plain read is no forgery risk (and a typed URL
    // sends no Origin).
    if acts && !request::is_same_origin(req, state) {
        return Err(Failure::Csrf.into());
    }
    Ok(session.member)
}

/// `GET /identity-config[?reload=true]`.
async fn show(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Refusal> {
    let format = Format::of(&req).data();
    show_config(&req, &state, format)
        .await
        .map_err(|refusal| refusal.format(format))
}

async fn show_config(
    req: &HttpRequest,
    state: &AppState,
    format: Format,
) -> Result<HttpResponse, Refusal> {
    let wants_reload = Params::parse(&[req.query_string().as_bytes()])
        .ok()
        .is_some_and(|p| p.get("reload") == Some("true"));
    let admin = administrator(req, state, wants_reload).await?;
    if wants_reload {
        do_reload(req, state, &admin).await?;
    }
    let config = state.config.load_full();
    let domains = config.domains.rules();
    let default_authentication = config.domains.default_authentication();
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    Ok(match format {
        Format::Xml => {
            let join = |nets: &[ipnet::IpNet]| {
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            render::xml(
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
    })
}

/// `POST /identity-config/reload`.
async fn reload_now(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Refusal> {
    let format = Format::of(&req).data();
    let reloaded = async {
        let admin = administrator(&req, &state, true).await?;
        do_reload(&req, &state, &admin).await
    };
    let providers = reloaded.await.map_err(|refusal| refusal.format(format))?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "status": "reloaded", "providers": providers })))
}

/// Reloads for an administrator; a refused file answers 400 with every problem (already in the
/// security log).
async fn do_reload(req: &HttpRequest, state: &AppState, admin: &Member) -> Result<usize, Refusal> {
    let mut event = request::attempt(req, state).event(Event::ConfigReload);
    event.member_id = Some(admin.id);
    event.email = Some(audit::clean(&admin.email, 254));
    let incident = event.incident.clone();
    reload::reload(state, event).await.map_err(|errors| {
        let problems: Vec<String> = errors.to_string().lines().map(str::to_string).collect();
        Refusal::logged_as(Failure::InvalidConfig, incident).problems(problems)
    })
}
