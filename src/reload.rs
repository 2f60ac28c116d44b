//! Reloading `identity.yaml` (see `docs/configuration.md`): on `SIGHUP` or an administrator's request. A file that
//! fails to validate is refused with its errors and the running configuration stays in force;
//! every attempt goes to the security log.

use std::sync::Arc;

use crate::audit::{Outcome, SecurityEvent};
use crate::db::members::CarriedOver;
use crate::db::{self, Database};
use crate::identity::{self, ConfigErrors};
use crate::state::AppState;

/// Reads and validates the configuration file again and, if it is valid, swaps it in at once
/// for every request that starts after. Returns the number of providers of the new
/// configuration. `event` (a `config_reload` event) says who asked.
pub async fn reload(state: &AppState, mut event: SecurityEvent) -> Result<usize, ConfigErrors> {
    // One reload at a time: the file read last is the one stored last.
    let _one_at_a_time = state.reload_lock.lock().await;
    let path = state.settings.config_path.clone();
    let loaded = tokio::task::spawn_blocking(move || identity::load(&path))
        .await
        .unwrap_or_else(|e| {
            Err(ConfigErrors {
                file: state.settings.config_path.display().to_string(),
                problems: vec![identity::Problem {
                    pos: identity::Pos { line: 1, column: 1 },
                    error: identity::ConfigError::Syntax(format!("the reload did not finish: {e}")),
                }],
            })
        });
    let now = state.clock.now();
    match loaded {
        Ok(config) => {
            let providers = config.providers.len();
            // Bindings of providers this configuration brings back are theirs issuer's before
            // any sign-in through them.
            carry_over_bindings(&state.db, config.provider_issuers()).await;
            state.config.store(Arc::new(config));
            state.userinfo.clear();
            event.outcome = Outcome::Success;
            tracing::info!(providers, "identity configuration reloaded");
            state.db.record(&event, now).await;
            Ok(providers)
        }
        Err(errors) => {
            event.outcome = Outcome::Failure;
            event.reason = Some("invalid_config".into());
            tracing::warn!(incident = %event.incident, problems = %errors, "identity configuration refused; the running one stays");
            state.db.record(&event, now).await;
            Err(errors)
        }
    }
}

/// Carries bindings stored by provider id over to the issuers of the providers the
/// configuration names (see `docs/operations.md`, upgrading); a failure is logged and tried
/// again at the next start or reload.
pub async fn carry_over_bindings(db: &Database, issuers: Vec<(String, String)>) {
    match db
        .write(move |conn| db::members::carry_over_bindings(conn, &issuers))
        .await
    {
        Ok(found) => log_carried_over(found),
        Err(error) => tracing::warn!(%error, "cannot carry bindings over to their issuers"),
    }
}

/// Says what carrying bindings over did, when it did anything.
pub fn log_carried_over(found: CarriedOver) {
    if found.moved > 0 {
        tracing::info!(
            bindings = found.moved,
            "bindings carried over to their issuers"
        );
    }
    if found.conflicting > 0 {
        tracing::warn!(
            bindings = found.conflicting,
            "bindings left by provider id: they disagree with the binding kept for the issuer (see idgate members list)"
        );
    }
}
