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

use actix_web::web;

/// Every resource of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(authenticate::configure)
        .configure(session::configure)
        .configure(login::configure)
        .configure(config::configure)
        .configure(provider_logout::configure);
}
