//! Fetching provider documents: 5-second timeouts, no redirects, bodies capped at 1 MiB, and
//! the `Cache-Control` max-age that says how long the answer may be kept.

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;

/// The largest document accepted from a provider.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Bounds on how long a document is cached, and the value used without a max-age.
pub const MIN_TTL_SECS: i64 = 60;
pub const MAX_TTL_SECS: i64 = 24 * 60 * 60;
pub const DEFAULT_TTL_SECS: i64 = 60 * 60;

/// Why a fetch failed. The messages name the URL, never a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent more than {MAX_BODY_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url} sent an invalid document: {reason}")]
    Invalid { url: String, reason: String },
}

impl FetchError {
    /// Whether the provider is unreachable rather than answering wrongly: a network error or
    /// timeout, a 5xx, or 429. Only then do the last good keys stay in use.
    pub fn is_outage(&self) -> bool {
        match self {
            FetchError::Unreachable { .. } => true,
            FetchError::Status { status, .. } => *status >= 500 || *status == 429,
            FetchError::TooLarge { .. } | FetchError::Invalid { .. } => false,
        }
    }
}

/// Why a request got no answer, named first (DNS, connection refused, TLS, timeout), then the
/// whole chain of causes.
fn cause(error: &reqwest::Error) -> String {
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        source = inner.source();
    }
    let lower = chain.to_ascii_lowercase();
    let kind = if error.is_timeout() || lower.contains("timed out") {
        "timeout"
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
        "DNS"
    } else if lower.contains("refused") {
        "connection refused"
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        "TLS"
    } else {
        "connection failed"
    };
    format!("{kind} ({chain})")
}

/// A fetched body and how long it may be cached, in seconds.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub ttl_secs: i64,
}

/// The HTTP client for provider documents.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    pub fn new() -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("idgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Unreachable {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Fetcher { client })
    }

    /// GETs a document (200 only), reading at most [`MAX_BODY_BYTES`].
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        self.send(url, self.client.get(url)).await
    }

    /// GETs a document on behalf of a token holder (the userinfo endpoint).
    pub async fn get_with_bearer(&self, url: &str, token: &str) -> Result<Fetched, FetchError> {
        let request = self
            .client
            .get(url)
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"));
        self.send(url, request).await
    }

    /// POSTs a form (a token request), with HTTP Basic client authentication when `basic`
    /// names a client id and secret; the answer is read as for [`Fetcher::get`].
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Fetched, FetchError> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        if let Some((id, secret)) = basic {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                basic_authorization(id, secret),
            );
        }
        self.send(url, request).await
    }

    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Fetched, FetchError> {
        let unreachable = |e: reqwest::Error| FetchError::Unreachable {
            url: url.to_string(),
            reason: cause(&e),
        };
        let mut response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(unreachable)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
        };
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let ttl_secs = response
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age)
            .map_or(DEFAULT_TTL_SECS, |age| {
                age.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
            });
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, ttl_secs })
    }
}

/// `client_secret_basic` (RFC 6749 §2.3.1): id and secret form-urlencoded, then base64.
fn basic_authorization(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// The max-age of a `Cache-Control` value; `no-store` and `no-cache` count as zero.
fn max_age(value: &str) -> Option<i64> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|n| n.trim_matches('"').parse::<i64>().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_are_urlencoded_before_base64() {
        // RFC 6749 §2.3.1: "a:b" + "p w" → "a%3Ab:p+w".
        assert_eq!(basic_authorization("a:b", "p w"), "Basic YSUzQWI6cCt3");
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=300"), Some(300));
        assert_eq!(max_age("Max-Age=\"120\", must-revalidate"), Some(120));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
