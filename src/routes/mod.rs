//! HTTP resources, one module each; each exposes `configure`.

pub mod health;
