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

/// Every resource of the service; anything else is not found (a page for browsers).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.default_service(web::to(not_found))
        .configure(health::configure)
        .configure(authenticate::configure)
        .configure(session::configure)
        .configure(login::configure)
        .configure(config::configure)
        .configure(provider_logout::configure);
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, Refusal> {
    Err(Refusal::from(Failure::NotFound).format(Format::of(&req)))
}
