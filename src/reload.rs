//! Reloading `identity.yaml` (see `docs/configuration.md`): on `SIGHUP` or an administrator's request. A file that
//! fails to validate is refused with its errors and the running configuration stays in force;
//! every attempt goes to the security log.

use std::sync::Arc;

use crate::audit::{Outcome, SecurityEvent};
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
