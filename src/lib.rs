//! idgate: the single-sign-on gate of a document platform.
//!
//! Data flows configuration ([`identity`]) → token ([`oidc`]) → member ([`members`], stored by
//! [`db`]) → policy ([`access`], pure) → session ([`signin`], [`sessions`]) → HTTP
//! ([`startup`], [`routes`]), with every attempt in the security log ([`audit`]). The layers and
//! which may import which are drawn in `docs/architecture.md`.

pub mod access;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod db;
pub mod flows;
pub mod identity;
pub mod ids;
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
pub mod state;
pub mod telemetry;
