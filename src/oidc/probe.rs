//! `idgate check-config --probe`: each provider's discovery document and JWKS fetched as a
//! sign-in would, and what would make its first sign-in fail reported before anyone tries.

use std::sync::Arc;

use super::http::Fetcher;
use super::keys::{KeyError, KeyStore};
use crate::clock::SystemClock;
use crate::identity::{HMAC_ALGS, Provider, TENANT_PLACEHOLDER};
use crate::metrics::Metrics;

/// What the probe found of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Sign-ins through the provider would fail.
    Error(String),
    /// Sign-ins work, but probably not as meant.
    Warning(String),
}

/// Fetches the provider's documents and checks them.
pub async fn probe(fetcher: Fetcher, provider: &Provider) -> Vec<Finding> {
    let store = KeyStore::new(fetcher, Arc::new(SystemClock), Arc::new(Metrics::new(None)));
    let set = match store.keys(provider).await {
        Ok(set) => set,
        Err(KeyError::IssuerMismatch { authority, issuer }) => {
            let why = if issuer.contains(TENANT_PLACEHOLDER) {
                "a multi-tenant issuer: list the accepted `tenants`".to_string()
            } else {
                format!("it must equal `authorityUrl` {authority}")
            };
            return vec![Finding::Error(format!(
                "provider `{}`: the discovery document names the issuer {issuer}; {why}",
                provider.id
            ))];
        }
        Err(KeyError::Fetch(error)) => {
            return vec![Finding::Error(format!(
                "provider `{}` is unreachable: {error}",
                provider.id
            ))];
        }
    };
    let mut findings = Vec::new();
    let metadata = &set.metadata;
    let common: Vec<&str> = provider
        .id_token_signing_algs
        .iter()
        .copied()
        .filter(|alg| metadata.signing_algs.iter().any(|a| a == alg))
        .collect();
    if common.is_empty() {
        findings.push(Finding::Error(format!(
            "provider `{}` signs ID tokens with {} and idgate accepts {} of it: no algorithm in common (see `idTokenSigningAlgs`)",
            provider.id,
            metadata.signing_algs.join(", "),
            provider.id_token_signing_algs.join(", "),
        )));
    } else {
        let asymmetric: Vec<&str> = common
            .iter()
            .copied()
            .filter(|alg| !HMAC_ALGS.contains(alg))
            .collect();
        if !asymmetric.is_empty() && !asymmetric.iter().any(|alg| set.has_key_for(alg)) {
            findings.push(Finding::Error(format!(
                "provider `{}` publishes no key usable for {} at {}",
                provider.id,
                asymmetric.join(", "),
                metadata.jwks_uri
            )));
        }
    }
    let releases_email = metadata
        .claims_supported
        .as_ref()
        .is_none_or(|claims| claims.iter().any(|c| c == "email"));
    if !releases_email {
        findings.push(Finding::Warning(format!(
            "provider `{}` does not list `email` in claims_supported: email will be read from userinfo",
            provider.id
        )));
    }
    findings
}
