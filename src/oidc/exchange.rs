//! The token request of the authorization-code flow (RFC 6749 §4.1.3 with PKCE, RFC 7636):
//! the code and the verifier for the provider's ID token.

use serde::Deserialize;

use super::http::{FetchError, Fetcher};
use crate::identity::Provider;

/// Why no ID token came back.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The provider refused the code (used, expired, or not for this client or verifier).
    #[error("the provider refused the code: {0}")]
    Rejected(String),
    /// The provider could not be reached or answered unusably.
    #[error("the token request failed: {0}")]
    Unavailable(String),
}

/// What the token endpoint gave: the ID token, and the access token (for the userinfo endpoint,
/// when the email is read there). Neither is ever logged.
#[derive(Debug)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: Option<String>,
}

/// Trades `code` for the ID token and the access token. Confidential clients (a `clientSecret`) authenticate with
/// `client_secret_basic`; public clients send their `client_id`. The PKCE verifier is always sent.
pub async fn exchange_code(
    fetcher: &Fetcher,
    token_endpoint: &str,
    provider: &Provider,
    code: &str,
    code_verifier: &str,
    redirect_uri: &str,
) -> Result<Tokens, ExchangeError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", code_verifier),
    ];
    let basic = match &provider.client_secret {
        Some(secret) => Some((provider.client_id.as_str(), secret.expose())),
        None => {
            form.push(("client_id", provider.client_id.as_str()));
            None
        }
    };
    let fetched = fetcher
        .post_form(token_endpoint, &form, basic)
        .await
        .map_err(|e| match e {
            // 401 is the provider refusing idgate itself (a wrong clientSecret): not the code.
            FetchError::Status { status, .. } if (400..500).contains(&status) && status != 401 => {
                ExchangeError::Rejected(e.to_string())
            }
            other => ExchangeError::Unavailable(other.to_string()),
        })?;
    #[derive(Deserialize)]
    struct TokenResponse {
        id_token: Option<String>,
        access_token: Option<String>,
    }
    let answer: TokenResponse = serde_json::from_slice(&fetched.body)
        .map_err(|e| ExchangeError::Unavailable(format!("unreadable token response: {e}")))?;
    let id_token = answer
        .id_token
        .ok_or_else(|| ExchangeError::Unavailable("the token response has no id_token".into()))?;
    Ok(Tokens {
        id_token,
        access_token: answer.access_token,
    })
}
