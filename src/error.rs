//! `AppError`: the one place where failures become HTTP answers. Bodies carry a fixed, safe
//! message and an incident id; the cause is logged once, here, under that id.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use rand::Rng as _;
use serde::Serialize;

use crate::db::DbError;

/// A failure answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be reached or failed: 503, the process stays up.
    #[error("database unavailable")]
    Unavailable(#[source] DbError),
    /// Anything else that should not happen: 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Unavailable(e)
    }
}

impl From<crate::members::StoreError> for AppError {
    fn from(e: crate::members::StoreError) -> Self {
        match e {
            crate::members::StoreError::Db(db) => AppError::Unavailable(db),
            other => AppError::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    id: &'a str,
    message: &'a str,
    incident: &'a str,
}

impl AppError {
    fn code_and_message(&self) -> (&'static str, &'static str) {
        match self {
            AppError::Unavailable(_) => (
                "unavailable",
                "The service is temporarily unavailable. Please try again shortly.",
            ),
            AppError::Internal(_) => ("internal", "Something went wrong on our side."),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let incident = new_incident_id();
        let (id, message) = self.code_and_message();
        tracing::error!(incident = %incident, error = %self, cause = ?std::error::Error::source(self), "request failed");
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: ErrorDetail {
                id,
                message,
                incident: &incident,
            },
        })
    }
}

/// A short random id that ties what a person sees to the detail in the security log.
pub fn new_incident_id() -> String {
    let bytes: [u8; 8] = rand::rng().random();
    crate::sessions::hex(&bytes)
}
