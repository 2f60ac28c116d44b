//! OpenID Connect, the only place the openidconnect crate appears: fetching provider documents
//! ([`http`]), the discovery and key cache ([`keys`]), the structural token rules ([`token`]) and
//! ID-token verification ([`verify`]), with ES256 signatures checked by `es256`.

mod es256;
pub mod exchange;
pub mod http;
pub mod jwk;
pub mod keys;
pub mod probe;
pub mod token;
pub mod userinfo;
pub mod verify;
