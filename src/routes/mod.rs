//! HTTP resources, one module each; each exposes `configure`.

pub mod answer;
pub mod authenticate;
pub mod config;
pub mod cors;
pub mod health;
pub mod login;
pub mod request;
pub mod session;
