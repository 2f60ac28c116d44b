//! OpenID Connect: the checks an ID token must pass. Provider metadata, keys and signature
//! verification join this module as the sign-in core grows.

pub mod token;
