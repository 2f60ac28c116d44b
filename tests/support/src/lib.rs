//! What idgate's tests and benchmarks share: a mock OpenID provider serving discovery, a JWKS,
//! an authorization, a token and a userinfo endpoint, with real keys that sign real tokens.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support fails by panicking"
)]

pub mod provider;
pub mod tls;
