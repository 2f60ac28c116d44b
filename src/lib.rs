//! idgate: the single-sign-on gate of a document platform.
//!
//! Data flows configuration ([`identity`]) → token ([`oidc`]) → member ([`members`], in the
//! [`db`]) → policy ([`access`], pure) → session ([`signin`], [`sessions`]) → HTTP
//! ([`startup`], [`routes`]), with every attempt in the security log ([`audit`]).

pub mod access;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod db;
pub mod error;
pub mod flows;
pub mod identity;
pub mod members;
pub mod metrics;
pub mod oidc;
pub mod reason;
pub mod reload;
pub mod routes;
pub mod sessions;
pub mod settings;
pub mod signin;
pub mod startup;
pub mod telemetry;
