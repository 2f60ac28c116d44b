//! How answers are written: pages (askama templates), JSON by default, XML when the client asks
//! for `application/xml`; errors as `{"error":{"id","message","incident"}}` with a fixed message,
//! never inner detail. The only module that renders.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use askama::Template;
use serde::Serialize;
use serde_json::json;

use super::failure::Failure;
use crate::clock::rfc3339;
use crate::members::Member;
use crate::sessions::SessionView;

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
    base: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    base: &'a str,
}

#[derive(Template)]
#[template(path = "refused_account.html")]
struct RefusedAccountPage<'a> {
    email: &'a str,
    incident: &'a str,
    href: &'a str,
}

/// The page for a person whose account a member or policy rule refused at the end of a browser
/// sign-in: the email the provider asserted, that this account cannot sign in here, and a link to
/// sign in with a different account, beside the incident.
pub fn refused_account(failure: Failure, incident: &str, email: &str, href: &str) -> HttpResponse {
    let mut builder = HttpResponse::build(failure.status());
    builder.insert_header(("Cache-Control", "no-store"));
    page(
        builder,
        &RefusedAccountPage {
            email,
            incident,
            href,
        },
    )
}

/// The error answer for `failure`, tied to the security log by `incident`. `problems` (a
/// refused configuration's, by line) are listed in JSON answers only.
pub fn failure(
    format: Format,
    failure: Failure,
    incident: &str,
    problems: &[String],
    base: &str,
) -> HttpResponse {
    let mut builder = HttpResponse::build(failure.status());
    if failure == Failure::MethodNotAllowed {
        builder.insert_header(("Allow", "POST"));
    }
    builder.insert_header(("Cache-Control", "no-store"));
    match format {
        Format::Json if problems.is_empty() => builder.json(json!({
            "error": { "id": failure.id(), "message": failure.message(), "incident": incident }
        })),
        Format::Json => builder.json(json!({
            "error": {
                "id": failure.id(),
                "message": failure.message(),
                "incident": incident,
                "problems": problems,
            }
        })),
        Format::Html => {
            let (heading, message) = failure.page_text();
            page(
                builder,
                &ErrorPage {
                    heading,
                    message,
                    incident,
                    base,
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
        Format::Xml => {
            // XML 1.0 cannot carry every character a stored name may hold.
            let mut member = view.member.clone();
            for field in [
                &mut member.email,
                &mut member.username,
                &mut member.firstname,
                &mut member.surname,
            ] {
                *field = xml_text(field);
            }
            xml(
                builder,
                &SessionXml {
                    member: &member,
                    provider: &xml_text(&view.provider),
                    expires_at: &expires_at,
                },
            )
        }
    }
}

/// The answer to a sign-out.
pub fn signed_out(format: Format, mut builder: HttpResponseBuilder, base: &str) -> HttpResponse {
    builder.insert_header(("Cache-Control", "no-store"));
    match format {
        Format::Json => builder.json(json!({ "status": "signed-out" })),
        Format::Xml => xml(builder, &SignedOutXml),
        Format::Html => page(builder, &SignedOutPage { base }),
    }
}

/// A `303 See Other` to `target`, never cached.
pub fn see_other(target: &str) -> HttpResponseBuilder {
    let mut builder = HttpResponse::SeeOther();
    builder
        .insert_header((LOCATION, target))
        .insert_header(("Cache-Control", "no-store"));
    builder
}

/// Renders an HTML page into `builder`.
pub fn page(builder: HttpResponseBuilder, template: &impl Template) -> HttpResponse {
    page_with_form_targets(builder, template, None)
}

/// [`page`] whose forms may also lead to `origin` (a sign-out that goes on to the provider:
/// browsers hold a form's redirects to its `form-action` too).
pub fn page_with_form_targets(
    mut builder: HttpResponseBuilder,
    template: &impl Template,
    origin: Option<&str>,
) -> HttpResponse {
    let form_action = match origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_string(),
    };
    match template.render() {
        Ok(body) => builder
            .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header((
                "Content-Security-Policy",
                format!(
                    "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'"
                ),
            ))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a page");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// `text` with every character XML 1.0 forbids (control characters other than tab, line feed
/// and carriage return; surrogates; U+FFFE, U+FFFF) replaced by U+FFFD.
pub fn xml_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t'
            | '\n'
            | '\r'
            | '\u{20}'..='\u{d7ff}'
            | '\u{e000}'..='\u{fffd}'
            | '\u{10000}'.. => c,
            _ => '\u{fffd}',
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberStatus;

    #[test]
    fn xml_answers_never_carry_what_xml_forbids() {
        assert_eq!(
            xml_text("a\u{1}b\u{1b}[31m\tc\u{fffe}"),
            "a\u{fffd}b\u{fffd}[31m\tc\u{fffd}"
        );
        assert_eq!(xml_text("Ünïcode ✓"), "Ünïcode ✓");
    }

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
}
