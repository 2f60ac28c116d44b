//! Integration tests: the real app and the real binary, each test with its own database.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod architecture;
mod audit_cli;
mod auth_codes;
mod bearer;
mod browser_flow;
mod check_config;
mod config_reload;
mod durability;
mod e2e;
mod forward_auth;
mod hardening;
mod health;
mod helpers;
mod instances;
mod members_cli;
mod members_store;
mod metrics;
mod migrations;
mod outage;
mod package;
mod properties;
mod provider_keys;
mod provider_logout;
mod providers;
mod serve;
mod sessions;
mod sessions_cli;
mod signin_rules;
mod signin_statement;
mod state;
mod upgrade;
mod writer;
