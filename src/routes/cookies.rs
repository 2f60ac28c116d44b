//! The cookies idgate sets: the session cookie (made from [`CookieSettings`]) and the flow
//! cookie that binds a sign-in flow to the browser that started it.

use actix_web::cookie::time::Duration;
use actix_web::cookie::{Cookie, SameSite};

use actix_web::HttpRequest;

use super::request;
use crate::flows::{FLOW_LIFETIME_SECS, ResponseMode, flow_cookie_name};
use crate::sessions::CookieSettings;
use crate::state::AppState;

/// The cookie of a session just started for this request's browser.
pub fn new_session(req: &HttpRequest, state: &AppState, id: String) -> Cookie<'static> {
    session_cookie(&state.settings.cookie, id, request::is_https(req, state))
}

/// The cookie that carries a new session: HttpOnly, SameSite=Lax, Path=/, Secure over https.
/// No expiry: it lasts as long as the browser session, and the server ends it sooner.
pub fn session_cookie(settings: &CookieSettings, id: String, secure: bool) -> Cookie<'static> {
    Cookie::build(settings.name.clone(), id)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure)
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn removal_cookie(settings: &CookieSettings, secure: bool) -> Cookie<'static> {
    let mut cookie = session_cookie(settings, String::new(), secure);
    cookie.make_removal();
    cookie
}

/// The cookie that binds flows to this browser, for the life of a flow. With `form_post` over
/// https it is `SameSite=None`, so that it survives the provider's cross-site POST (the session
/// cookie stays `Lax`); otherwise `Lax` (browsers refuse `None` without `Secure`, so plain http
/// development setups use `Lax`, which same-site setups on one host still carry).
pub fn flow_cookie(value: String, secure: bool, mode: ResponseMode, base: &str) -> Cookie<'static> {
    let path = if is_host_wide(secure, base) {
        "/".to_string()
    } else {
        format!("{base}/callback")
    };
    let same_site = if secure && mode == ResponseMode::FormPost {
        SameSite::None
    } else {
        SameSite::Lax
    };
    flow_cookie_at(value, secure, base, path, same_site)
}

/// The same value for the flow starts (`{base}/login/…`), where a browser does not send a
/// cookie scoped to the callback: without it, a second tab's start would give the browser a new
/// value, and the first tab's flow would no longer be this browser's. `None` where the flow
/// cookie is sent everywhere already (`Path=/`). Always `SameSite=Lax`: a flow starts from a
/// page of idgate's or a link followed to it, never from another site's POST.
pub fn flow_start_cookie(value: String, secure: bool, base: &str) -> Option<Cookie<'static>> {
    (!is_host_wide(secure, base))
        .then(|| flow_cookie_at(value, secure, base, format!("{base}/login"), SameSite::Lax))
}

/// Whether the flow cookie is one `__Host-` cookie for the whole host (`Path=/`): over https at
/// the root of the host; otherwise it is scoped to the callback.
fn is_host_wide(secure: bool, base: &str) -> bool {
    secure && base.is_empty()
}

fn flow_cookie_at(
    value: String,
    secure: bool,
    base: &str,
    path: String,
    same_site: SameSite,
) -> Cookie<'static> {
    Cookie::build(flow_cookie_name(secure, base.is_empty()), value)
        .http_only(true)
        .path(path)
        .max_age(Duration::seconds(FLOW_LIFETIME_SECS))
        .same_site(same_site)
        .secure(secure)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_over_https() {
        let settings = CookieSettings::default();
        let cookie = session_cookie(&settings, "v".into(), true).to_string();
        assert!(cookie.starts_with("idgate_session=v"), "{cookie}");
        for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        let plain = session_cookie(&settings, "v".into(), false).to_string();
        assert!(!plain.contains("Secure"), "{plain}");
        let removal = removal_cookie(&settings, false).to_string();
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }

    #[test]
    fn the_flow_cookie_is_host_bound_over_https_and_none_only_for_form_post() {
        let https_post = flow_cookie("v".into(), true, ResponseMode::FormPost, "").to_string();
        assert!(
            https_post.starts_with("__Host-idgate_flow=v"),
            "{https_post}"
        );
        for part in ["Secure", "SameSite=None", "HttpOnly", "Max-Age=600"] {
            assert!(https_post.contains(part), "{https_post} lacks {part}");
        }
        assert!(https_post.contains("Path=/") && !https_post.contains("Path=/callback"));
        let https_query = flow_cookie("v".into(), true, ResponseMode::Query, "").to_string();
        assert!(https_query.contains("SameSite=Lax"), "{https_query}");
        let http = flow_cookie("v".into(), false, ResponseMode::FormPost, "").to_string();
        assert!(
            http.starts_with("idgate_flow=v")
                && http.contains("SameSite=Lax")
                && !http.contains("Secure"),
            "{http}"
        );
        assert!(http.contains("Path=/callback"), "{http}");
        // Under a path: scoped to the callback there.
        let under = flow_cookie("v".into(), true, ResponseMode::Query, "/sso").to_string();
        assert!(
            under.starts_with("__Secure-idgate_flow=v") && under.contains("Path=/sso/callback"),
            "{under}"
        );
    }

    #[test]
    fn flow_starts_get_the_value_where_the_flow_cookie_is_scoped_to_the_callback() {
        assert!(flow_start_cookie("v".into(), true, "").is_none());
        let http = flow_start_cookie("v".into(), false, "")
            .map(|c| c.to_string())
            .unwrap_or_default();
        assert!(
            http.starts_with("idgate_flow=v") && http.contains("Path=/login;"),
            "{http}"
        );
        let under = flow_start_cookie("v".into(), true, "/sso")
            .map(|c| c.to_string())
            .unwrap_or_default();
        for part in [
            "__Secure-idgate_flow=v",
            "Path=/sso/login",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=600",
        ] {
            assert!(under.contains(part), "{under} lacks {part}");
        }
    }
}
