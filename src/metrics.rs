//! Metrics for `GET /metrics` (Prometheus/OpenMetrics text, by the `prometheus-client` crate):
//! sign-ins by outcome and reason with their latency, session checks, provider fetches and the
//! key and userinfo caches.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// What the writer has done, for `GET /metrics` (clones share the same values).
#[derive(Clone, Debug, Default)]
pub struct WriterCounters {
    /// Transactions committed.
    pub commits: Counter,
    /// Writes those transactions carried.
    pub writes: Counter,
    /// Writes waiting for the writer.
    pub queued: Gauge,
    /// Batches run again with a savepoint for every write, after a failure of a run in which
    /// some writes had none (PostgreSQL).
    pub retries: Counter,
}

/// Latency buckets: 50 µs to about 1.6 s, doubling.
#[derive(Clone, Copy, Debug, Default)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignInLabels {
    /// `login` (a session) or `code_issued` (an authentication code).
    pub event: &'static str,
    /// `success`, `failure` or `error`.
    pub outcome: &'static str,
    /// The reason code of a failure; empty on success.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `cookie` or `bearer`.
    pub via: &'static str,
    /// `live`, `none` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub provider: String,
    /// `discovery`, `jwks` or `userinfo`.
    pub document: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `keys` or `userinfo`.
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// Every metric idgate keeps, registered once per application.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub sign_ins: Family<SignInLabels, Counter>,
    pub sign_in_seconds: Family<OutcomeLabels, Histogram, LatencyBuckets>,
    pub session_checks: Family<CheckLabels, Counter>,
    pub session_check_seconds: Family<CheckLabels, Histogram, LatencyBuckets>,
    pub provider_fetches: Family<FetchLabels, Counter>,
    pub cache_lookups: Family<CacheLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None)
    }
}

impl Metrics {
    /// Every metric, with the database writer's when there is one.
    pub fn new(writer: Option<WriterCounters>) -> Self {
        let mut registry = Registry::with_prefix("idgate");
        if let Some(writer) = writer {
            registry.register(
                "db_commits",
                "Transactions committed by the database writer (sign-ins arriving together share one)",
                writer.commits,
            );
            registry.register(
                "db_writes",
                "Writes run by the database writer (a refused sign-in's is rolled back on its own)",
                writer.writes,
            );
            registry.register(
                "db_write_queue",
                "Writes waiting for the database writer",
                writer.queued,
            );
            registry.register(
                "db_batch_retries",
                "Batches the database writer ran again, each write in a savepoint of its own, after a failure of a run in which some writes had none (PostgreSQL)",
                writer.retries,
            );
        }
        let sign_ins = Family::<SignInLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-ins and authentication codes by outcome and reason",
            sign_ins.clone(),
        );
        let sign_in_seconds = Family::new_with_constructor(LatencyBuckets);
        registry.register(
            "sign_in_seconds",
            "Time to verify a token and decide a sign-in",
            sign_in_seconds.clone(),
        );
        let session_checks = Family::<CheckLabels, Counter>::default();
        registry.register(
            "session_checks",
            "Session checks (/session, /auth) by credential and result",
            session_checks.clone(),
        );
        let session_check_seconds = Family::new_with_constructor(LatencyBuckets);
        registry.register(
            "session_check_seconds",
            "Time to check a session",
            session_check_seconds.clone(),
        );
        let provider_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "provider_fetches",
            "Requests to identity providers for discovery, JWKS and userinfo",
            provider_fetches.clone(),
        );
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Lookups in the provider key cache and the userinfo cache",
            cache_lookups.clone(),
        );
        Metrics {
            registry,
            sign_ins,
            sign_in_seconds,
            session_checks,
            session_check_seconds,
            provider_fetches,
            cache_lookups,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    pub fn sign_in(&self, labels: SignInLabels, took: Duration) {
        self.sign_in_seconds
            .get_or_create(&OutcomeLabels {
                outcome: labels.outcome,
            })
            .observe(took.as_secs_f64());
        self.sign_ins.get_or_create(&labels).inc();
    }

    pub fn session_check(&self, labels: CheckLabels, took: Duration) {
        self.session_check_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.session_checks.get_or_create(&labels).inc();
    }

    pub fn fetch(&self, provider: &str, document: &'static str) {
        self.provider_fetches
            .get_or_create(&FetchLabels {
                provider: provider.to_string(),
                document,
            })
            .inc();
    }

    pub fn cache(&self, cache: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache_lookups
            .get_or_create(&CacheLabels { cache, result })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_written_as_openmetrics_text() {
        let metrics = Metrics::default();
        metrics.sign_in(
            SignInLabels {
                event: "login",
                outcome: "failure",
                reason: "expired",
            },
            Duration::from_micros(120),
        );
        metrics.fetch("mock", "jwks");
        metrics.cache("keys", true);
        let text = metrics.encode().unwrap_or_default();
        assert!(
            text.contains(
                r#"idgate_sign_ins_total{event="login",outcome="failure",reason="expired"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("idgate_sign_in_seconds_bucket"), "{text}");
        assert!(
            text.contains(r#"idgate_provider_fetches_total{provider="mock",document="jwks"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"idgate_cache_lookups_total{cache="keys",result="hit"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
