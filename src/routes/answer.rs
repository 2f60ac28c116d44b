//! How answers are written: JSON by default, XML when the client asks for `application/xml`;
//! errors as `{"error":{"id","message","incident"}}` with a fixed message, never inner detail.

use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use askama::Template;
use serde::Serialize;
use serde_json::json;

use crate::members::Member;
use crate::reason::Reason;

/// The answer's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
    /// A person's browser: pages, not data.
    Html,
}

impl Format {
    /// The first of `text/html`, `application/xml` (or `text/xml`) and `application/json` that
    /// `Accept` names (browsers name HTML first); JSON when it names none of them.
    pub fn of(req: &HttpRequest) -> Format {
        let accept = req
            .headers()
            .get_all(ACCEPT)
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase();
        [
            ("text/html", Format::Html),
            ("application/xml", Format::Xml),
            ("text/xml", Format::Xml),
            ("application/json", Format::Json),
        ]
        .into_iter()
        .filter_map(|(needle, format)| accept.find(needle).map(|at| (at, format)))
        .min_by_key(|(at, _)| *at)
        .map_or(Format::Json, |(_, format)| format)
    }

    /// For data endpoints that have no page: HTML becomes JSON.
    pub fn data(self) -> Format {
        match self {
            Format::Html => Format::Json,
            other => other,
        }
    }
}

/// A failure answered to a client, beside the token and member reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A rule of SPEC §3 refused the token or the member.
    Refused(Reason),
    /// A required parameter is missing.
    MissingParameter,
    /// A security parameter was sent more than once.
    DuplicateParameter,
    /// The `action` parameter names nothing idgate does.
    UnknownAction,
    /// An ID token in the URL of a POST.
    TokenInUrl,
    /// The method cannot be used for this action.
    MethodNotAllowed,
    /// No valid session.
    NoSession,
    /// No such page or provider.
    NotFound,
    /// A sign-in asked for by a page idgate does not trust (login CSRF).
    Csrf,
    /// A member who is not an administrator.
    Forbidden,
    /// A configuration file that does not validate.
    InvalidConfig,
    /// The database or the identity provider cannot be reached.
    Unavailable,
}

impl Failure {
    pub fn id(self) -> &'static str {
        match self {
            Failure::Refused(reason) => reason.code(),
            Failure::MissingParameter => "missing_parameter",
            Failure::DuplicateParameter => "duplicate_parameter",
            Failure::UnknownAction => "unknown_action",
            Failure::TokenInUrl => "token_in_url",
            Failure::MethodNotAllowed => "method_not_allowed",
            Failure::NoSession => "no_session",
            Failure::NotFound => "not_found",
            Failure::Csrf => "csrf",
            Failure::Forbidden => "forbidden",
            Failure::InvalidConfig => "invalid_config",
            Failure::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Failure::Refused(reason) => reason.status(),
            Failure::MissingParameter
            | Failure::DuplicateParameter
            | Failure::UnknownAction
            | Failure::TokenInUrl => StatusCode::BAD_REQUEST,
            Failure::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Failure::NoSession => StatusCode::UNAUTHORIZED,
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::Csrf | Failure::Forbidden => StatusCode::FORBIDDEN,
            Failure::InvalidConfig => StatusCode::BAD_REQUEST,
            Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Failure::Refused(reason) => reason.message(),
            Failure::MissingParameter => "A required parameter is missing.",
            Failure::DuplicateParameter => "A parameter was sent more than once.",
            Failure::UnknownAction => "The action is not one idgate knows.",
            Failure::TokenInUrl => "ID tokens are sent in the request body, never in the URL.",
            Failure::MethodNotAllowed => "This action cannot be done with this method.",
            Failure::NoSession => "There is no valid session.",
            Failure::NotFound => "There is nothing here.",
            Failure::Csrf => "This request did not come from a page allowed to make it.",
            Failure::Forbidden => "Only administrators may do this.",
            Failure::InvalidConfig => {
                "The configuration file is not valid; the running configuration stays in force."
            }
            Failure::Unavailable => {
                "The service is temporarily unavailable. Please try again shortly."
            }
        }
    }
}

#[derive(Template)]
#[template(path = "xml/error.xml")]
struct ErrorXml<'a> {
    id: &'a str,
    message: &'a str,
    incident: &'a str,
}

#[derive(Template)]
#[template(path = "xml/session.xml")]
struct SessionXml<'a> {
    member: &'a Member,
    provider: &'a str,
    expires_at: &'a str,
}

#[derive(Template)]
#[template(path = "xml/signed_out.xml")]
struct SignedOutXml;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: &'a str,
    incident: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage;

impl Failure {
    /// What a person is told: friendly, never the reason itself (that is in the security log).
    fn page_text(self) -> (&'static str, &'static str) {
        match self {
            Failure::Refused(Reason::BadState) => (
                "This sign-in has expired",
                "It took too long, was already finished, or was started in another browser. Please start again.",
            ),
            Failure::Refused(Reason::ProviderError) => (
                "Sign-in was not completed",
                "The identity provider did not sign you in. You can try again.",
            ),
            Failure::Refused(_) | Failure::NoSession => (
                "We could not sign you in",
                "Please try again. If it keeps happening, contact your administrator.",
            ),
            Failure::Unavailable => (
                "The service is temporarily unavailable",
                "Please try again in a few moments.",
            ),
            Failure::MissingParameter
            | Failure::DuplicateParameter
            | Failure::UnknownAction
            | Failure::TokenInUrl
            | Failure::NotFound
            | Failure::Csrf
            | Failure::Forbidden
            | Failure::InvalidConfig
            | Failure::MethodNotAllowed => (
                "This request could not be handled",
                "The link or form you used is incomplete or invalid. Please start again.",
            ),
        }
    }
}

/// The error answer for `failure`, tied to the security log by `incident`.
pub fn failure(format: Format, failure: Failure, incident: &str) -> HttpResponse {
    let mut builder = HttpResponse::build(failure.status());
    if failure == Failure::MethodNotAllowed {
        builder.insert_header(("Allow", "POST"));
    }
    builder.insert_header(("Cache-Control", "no-store"));
    match format {
        Format::Json => builder.json(json!({
            "error": { "id": failure.id(), "message": failure.message(), "incident": incident }
        })),
        Format::Html => {
            let (heading, message) = failure.page_text();
            page(
                builder,
                &ErrorPage {
                    heading,
                    message,
                    incident,
                },
            )
        }
        Format::Xml => xml(
            builder,
            &ErrorXml {
                id: failure.id(),
                message: failure.message(),
                incident,
            },
        ),
    }
}

/// What `/session` and a successful sign-in answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub member: Member,
    pub provider: String,
    /// When the session ends unless used again (Unix seconds).
    pub ends_at: i64,
}

#[derive(Serialize)]
struct MemberJson<'a> {
    id: i64,
    email: &'a str,
    username: &'a str,
    firstname: &'a str,
    surname: &'a str,
    admin: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionJson<'a> {
    member: MemberJson<'a>,
    provider: &'a str,
    expires_at: &'a str,
}

/// Writes a session into `builder` (which may carry a cookie already).
pub fn session(
    format: Format,
    mut builder: HttpResponseBuilder,
    view: &SessionView,
) -> HttpResponse {
    let expires_at = rfc3339(view.ends_at);
    builder.insert_header(("Cache-Control", "no-store"));
    match format.data() {
        Format::Json | Format::Html => builder.json(SessionJson {
            member: MemberJson {
                id: view.member.id,
                email: &view.member.email,
                username: &view.member.username,
                firstname: &view.member.firstname,
                surname: &view.member.surname,
                admin: view.member.admin,
            },
            provider: &view.provider,
            expires_at: &expires_at,
        }),
        Format::Xml => xml(
            builder,
            &SessionXml {
                member: &view.member,
                provider: &view.provider,
                expires_at: &expires_at,
            },
        ),
    }
}

/// The answer to a sign-out.
pub fn signed_out(format: Format, mut builder: HttpResponseBuilder) -> HttpResponse {
    builder.insert_header(("Cache-Control", "no-store"));
    match format {
        Format::Json => builder.json(json!({ "status": "signed-out" })),
        Format::Xml => xml(builder, &SignedOutXml),
        Format::Html => page(builder, &SignedOutPage),
    }
}

/// Renders an HTML page into `builder`.
pub fn page(mut builder: HttpResponseBuilder, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => builder
            .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header((
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a page");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Renders an XML answer into `builder`.
pub fn xml(mut builder: HttpResponseBuilder, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => builder
            .insert_header((CONTENT_TYPE, "application/xml; charset=utf-8"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot render an XML answer");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-25T10:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberStatus;

    #[test]
    fn xml_answers_escape_what_they_carry() {
        let member = Member {
            id: 7,
            email: "a\"<b>@example.org".into(),
            username: "a&b".into(),
            firstname: "<script>".into(),
            surname: "O'Brien".into(),
            status: MemberStatus::Activated,
            locked: false,
            admin: true,
            created_at: 0,
            updated_at: 0,
        };
        let body = SessionXml {
            member: &member,
            provider: "p",
            expires_at: "2026-01-01T00:00:00Z",
        }
        .render()
        .unwrap_or_default();
        assert!(
            body.contains(r#"email="a&#34;&#60;b&#62;@example.org""#),
            "{body}"
        );
        assert!(body.contains(r#"username="a&#38;b""#), "{body}");
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains(r#"admin="true""#), "{body}");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
