//! HTTP resources, one module each, with the route table in [`configure`]; [`failure`] (the one
//! failure path) and [`render`] (pages, JSON and XML) are the only modules that build answers
//! from failures. The only modules, with `startup`, that know actix-web.

mod authenticate;
mod config;
mod cookies;
mod cors;
pub mod failure;
mod health;
mod login;
mod provider_logout;
pub mod render;
pub mod request;
mod session;

use actix_web::{HttpRequest, web};

use failure::{Failure, Refusal};
use render::Format;

/// Every resource of the service under `base` (the public URL's path; empty at the root of the
/// host), and only there; anything else is not found (a page for browsers).
pub fn configure_under(base: String) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.default_service(web::to(not_found));
        if base.is_empty() {
            configure(cfg);
        } else {
            cfg.service(web::scope(&base).configure(configure));
        }
    }
}

/// Every resource of the service.
fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(authenticate::configure)
        .configure(session::configure)
        .configure(login::configure)
        .configure(config::configure)
        .configure(provider_logout::configure);
}

async fn not_found(
    req: HttpRequest,
    state: web::Data<crate::state::AppState>,
) -> Result<actix_web::HttpResponse, Refusal> {
    Err(Refusal::from(Failure::NotFound)
        .format(Format::of(&req))
        .under(state.settings.base_path()))
}
