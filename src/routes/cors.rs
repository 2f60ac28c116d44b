//! CORS for the registered clients' websites only, always with credentials.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::state::AppState;

/// Adds the CORS headers (with credentials) when `Origin` is a registered client's website;
/// says whether it did.
pub fn allow_origin(req: &HttpRequest, state: &AppState, response: &mut HttpResponse) -> bool {
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return false;
    };
    let registered = origin
        .to_str()
        .is_ok_and(|origin| state.config.load().is_client_website(origin));
    if registered {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    registered
}

/// The answer to a CORS preflight: `204`, with the allowed methods and headers for a
/// registered website, and nothing more for any other origin.
pub fn preflight(req: &HttpRequest, state: &AppState, methods: &'static str) -> HttpResponse {
    let mut response = HttpResponse::NoContent().finish();
    if allow_origin(req, state, &mut response) {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}
