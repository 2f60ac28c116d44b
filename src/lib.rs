//! idgate: the single-sign-on gate of a document platform.
//!
//! Data flows configuration ([`identity`]) → access policy ([`access`], pure) → members
//! ([`members`], in the [`db`]) → HTTP ([`startup`], [`routes`]).

pub mod access;
pub mod cli;
pub mod clock;
pub mod db;
pub mod error;
pub mod identity;
pub mod members;
pub mod oidc;
pub mod reason;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod telemetry;
