//! idgate: the single-sign-on gate of a document platform.
//!
//! Configuration flows into typed values ([`identity`]), the access policy is pure
//! ([`access`]), members live in the database ([`members`]) and the HTTP service is assembled in
//! [`startup`].

pub mod access;
pub mod identity;
