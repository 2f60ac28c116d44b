//! The one failure path of the web layer: every way a request can fail, its HTTP status and
//! its fixed message, and [`Refusal`], the error handlers return with `?`. What a client is told
//! is always a fixed sentence and an incident id; the detail goes to the security log (or, for a
//! database failure, to the service's log) under that id, once, here.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::render::{self, Format};
use super::request;
use crate::audit::Event;
use crate::db::StoreError;
use crate::ids::new_incident_id;
use crate::reason::Reason;
use crate::signin::SignInError;
use crate::state::AppState;

/// A failure answered to a client, beside the token and member reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A token, member or flow rule refused.
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
    /// Too many anonymous writes from this address.
    RateLimited,
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
            Failure::RateLimited => "rate_limited",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Failure::Refused(reason) => reason_status(reason),
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
            Failure::RateLimited => StatusCode::TOO_MANY_REQUESTS,
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
            Failure::RateLimited => {
                "Too many attempts from this address. Please wait a moment and try again."
            }
        }
    }
}

/// 400 for a malformed token or a bad flow state, 401 for the token rules, 403 for the member
/// and policy rules.
fn reason_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::Malformed | Reason::BadState => StatusCode::BAD_REQUEST,
        Reason::UnknownClient
        | Reason::DomainNotAllowed
        | Reason::NoMember
        | Reason::MemberInactive
        | Reason::MemberLocked
        | Reason::IdentityMismatch
        | Reason::ApiAccountIp => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    }
}

impl Failure {
    /// What a person is told: friendly, never the reason itself (that is in the security log).
    pub(super) fn page_text(self) -> (&'static str, &'static str) {
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
            Failure::RateLimited => (
                "Too many attempts",
                "Too many sign-in attempts came from your network. Please wait a moment and try again.",
            ),
            Failure::NotFound => (
                "Page not found",
                "There is nothing at this address. Check the link, or start again from the sign-in page.",
            ),
            Failure::MissingParameter
            | Failure::DuplicateParameter
            | Failure::UnknownAction
            | Failure::TokenInUrl
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

/// A request refused, on its way to the client. Handlers return it with `?`: from a
/// [`Failure`], from a [`SignInError`] (already in the security log), or from a [`StoreError`]
/// (a database failure: 503).
#[derive(Debug)]
pub struct Refusal {
    failure: Failure,
    /// The answer's format; JSON unless a handler chose one.
    format: Option<Format>,
    /// Set once the refusal is logged; a refusal answered without one gets a fresh id.
    incident: Option<String>,
    /// What happened, for the security log only.
    detail: Option<String>,
    /// The provider concerned, for the security log.
    provider: Option<String>,
    /// A refused configuration's problems (JSON answers list them).
    problems: Vec<String>,
    /// A cookie the answer clears all the same.
    removal: Option<Cookie<'static>>,
    /// Seconds to wait, for `Retry-After`.
    retry_after: Option<u64>,
    /// The path idgate serves under, for the links of pages.
    base: String,
    /// The account a member or policy rule refused (the email the provider asserted), and where
    /// to sign in with another one.
    account: Option<(String, Option<String>)>,
    /// The request was counted against its address's allowance already (an anonymous write
    /// that failed): logging the refusal counts nothing more.
    counted: bool,
}

impl From<Failure> for Refusal {
    fn from(failure: Failure) -> Self {
        Refusal {
            failure,
            format: None,
            incident: None,
            detail: None,
            provider: None,
            problems: Vec::new(),
            removal: None,
            retry_after: None,
            account: None,
            base: String::new(),
            counted: false,
        }
    }
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Failure::Refused(reason).into()
    }
}

/// The sign-in rules logged the attempt already: the answer carries its incident.
impl From<SignInError> for Refusal {
    fn from(error: SignInError) -> Self {
        let (failure, incident) = match error {
            SignInError::Refused {
                reason,
                incident,
                email,
            } => {
                let mut refusal = Refusal::from(Failure::Refused(reason)).incident(incident);
                refusal.account = email.map(|email| (email, None));
                return refusal;
            }
            SignInError::Unavailable { incident } => (Failure::Unavailable, incident),
            SignInError::RateLimited {
                incident,
                retry_after,
            } => return Refusal::rate_limited(retry_after).incident(incident),
        };
        Refusal::from(failure).incident(incident)
    }
}

/// The database failed: 503, with the cause in the service's log under the incident.
impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        let incident = new_incident_id();
        tracing::error!(%incident, %error, "request failed: database");
        Refusal::from(Failure::Unavailable).incident(incident)
    }
}

impl Refusal {
    pub fn failure(&self) -> Failure {
        self.failure
    }

    /// Answered in `format`.
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Answered in `format`, unless a format was chosen already.
    pub fn or_format(mut self, format: Format) -> Self {
        self.format.get_or_insert(format);
        self
    }

    /// Too many anonymous writes from this address: try again in `retry_after` seconds.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut refusal = Refusal::from(Failure::RateLimited);
        refusal.retry_after = Some(retry_after);
        refusal
    }

    /// A refusal already in the security log under `incident`.
    pub fn logged_as(failure: Failure, incident: String) -> Self {
        Refusal::from(failure).incident(incident)
    }

    /// Tied to an incident already logged.
    fn incident(mut self, incident: String) -> Self {
        self.incident = Some(incident);
        self
    }

    /// What happened, for the security log.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The provider concerned, for the security log.
    pub fn provider(mut self, provider: Option<String>) -> Self {
        self.provider = provider;
        self
    }

    /// Problems listed in a JSON answer.
    pub fn problems(mut self, problems: Vec<String>) -> Self {
        self.problems = problems;
        self
    }

    /// Pages link under `base` (the path idgate serves under).
    pub fn under(mut self, base: &str) -> Self {
        self.base = base.to_owned();
        self
    }

    /// Where a person refused for the account they signed in with may choose another.
    pub fn another_account_at(mut self, href: String) -> Self {
        if let Some((_, link)) = &mut self.account {
            *link = Some(href);
        }
        self
    }

    /// The request was counted against its address's allowance already.
    pub fn counted(mut self) -> Self {
        self.counted = true;
        self
    }

    /// A cookie cleared by the answer all the same.
    pub fn clearing(mut self, cookie: Cookie<'static>) -> Self {
        self.removal = Some(cookie);
        self
    }

    /// Writes the refusal to the security log as an event of `kind` from this request, unless
    /// it is there already. A refusal is an anonymous write: beyond the address's allowance it
    /// becomes `429 rate_limited`, and nothing is stored. A request counted already
    /// ([`Refusal::counted`]) is not counted twice.
    pub async fn logged(mut self, req: &HttpRequest, state: &AppState, kind: Event) -> Self {
        if self.incident.is_some() {
            return self;
        }
        let attempt = request::attempt(req, state);
        let mut event = attempt.event(kind);
        if self.failure != Failure::RateLimited
            && !self.counted
            && let Err(retry_after) = state.take_anonymous_write(attempt.client_ip)
        {
            let format = self.format;
            self = Refusal::rate_limited(retry_after);
            self.format = format;
        }
        event.reason = Some(self.failure.id().to_string());
        if self.failure == Failure::RateLimited {
            event.trace();
            return self.incident(event.incident);
        }
        event.provider = self.provider.take();
        if let Some(detail) = &self.detail {
            tracing::info!(target: "idgate::security", incident = %event.incident, %detail, "refusal detail");
        }
        state.db.record(&event, state.clock.now()).await;
        self.incident(event.incident)
    }
}

/// Logs a handler's refusal (see [`Refusal::logged`]) and answers it in `format`, unless it has
/// a format already.
pub async fn settle<T>(
    result: Result<T, Refusal>,
    req: &HttpRequest,
    state: &AppState,
    kind: Event,
    format: Format,
) -> Result<T, Refusal> {
    match result {
        Ok(value) => Ok(value),
        Err(refusal) => Err(refusal
            .logged(req, state, kind)
            .await
            .or_format(format)
            .under(state.settings.base_path())),
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.failure.id())
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.failure.status()
    }

    fn error_response(&self) -> HttpResponse {
        let incident = self.incident.clone().unwrap_or_else(new_incident_id);
        let format = self.format.unwrap_or(Format::Json);
        let mut response = match (&self.account, format) {
            (Some((email, Some(href))), Format::Html) => {
                render::refused_account(self.failure, &incident, email, href)
            }
            _ => render::failure(format, self.failure, &incident, &self.problems, &self.base),
        };
        if let Some(removal) = &self.removal {
            let _ = response.add_cookie(removal);
        }
        if let Some(seconds) = self.retry_after
            && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds.to_string())
        {
            response
                .headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_spec() {
        assert_eq!(reason_status(Reason::Malformed), StatusCode::BAD_REQUEST);
        for r in [
            Reason::UnsupportedAlg,
            Reason::WrongTokenType,
            Reason::UnknownIssuer,
            Reason::UnknownKey,
            Reason::BadSignature,
            Reason::BadAudience,
            Reason::Expired,
            Reason::NotYetValid,
            Reason::BadLifetime,
            Reason::BadNonce,
            Reason::BadEmail,
            Reason::EmailNotVerified,
            Reason::Replayed,
            Reason::InvalidCode,
            Reason::ProviderError,
        ] {
            assert_eq!(reason_status(r), StatusCode::UNAUTHORIZED, "{r}");
        }
        for r in [
            Reason::DomainNotAllowed,
            Reason::NoMember,
            Reason::MemberInactive,
            Reason::MemberLocked,
            Reason::IdentityMismatch,
            Reason::ApiAccountIp,
            Reason::UnknownClient,
        ] {
            assert_eq!(reason_status(r), StatusCode::FORBIDDEN, "{r}");
        }
    }
}
