//! `GET /healthz` (the process is up), `GET /readyz` (configuration loaded, database reachable)
//! and `GET /metrics` (Prometheus).

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /metrics`: OpenMetrics text for Prometheus.
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// `GET /readyz`: 200 when the configuration is loaded and the database answers, else 503;
/// what is known of each provider's keys is reported beside, without deciding the status (a
/// provider nobody has needed yet is not a fault).
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let config = state.config.load();
    let providers = config.providers.len();
    let statuses: serde_json::Map<String, serde_json::Value> = config
        .providers
        .iter()
        .map(|p| (p.id.clone(), json!(state.keys.status(p))))
        .collect();
    let database = state.db.is_reachable().await;
    match database {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "config": { "loaded": true, "providers": providers },
            "database": "ok",
            "providers": statuses,
        })),
        Err(reason) => {
            tracing::warn!(%reason, "readiness check: database unreachable");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "config": { "loaded": true, "providers": providers },
                "database": "unreachable",
                "providers": statuses,
            }))
        }
    }
}
