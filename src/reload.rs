//! Reloading `identity.yaml` (see `docs/configuration.md`): on `SIGHUP` or an administrator's request. A file that
//! fails to validate is refused with its errors and the running configuration stays in force;
//! every attempt goes to the security log.

use std::sync::Arc;

use crate::audit::{Event, Outcome, SecurityEvent};
use crate::db::members::CarriedOver;
use crate::db::{self, Database};
use crate::identity::{self, ConfigErrors, IdentityConfig};
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
            let config = Arc::new(config);
            state.config.store(config.clone());
            revoke_what_is_no_longer_allowed(state, &config, &event).await;
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

/// Ends the sessions and removes the unused authentication codes that `config` no longer
/// allows (their provider is gone, or their member's domain no longer signs in through it), and
/// says how many in the log and the security log.
async fn revoke_what_is_no_longer_allowed(
    state: &AppState,
    config: &Arc<IdentityConfig>,
    reload: &SecurityEvent,
) {
    let rules = config.clone();
    let allowed = move |provider: &str, email: &str| rules.allows(provider, email);
    let revoked = state
        .db
        .write(move |conn| db::sessions::revoke_disallowed(conn, &allowed))
        .await;
    match revoked {
        Ok((sessions, codes)) => {
            for id_hash in &sessions {
                state.session_cache.forget(id_hash);
            }
            if sessions.is_empty() && codes == 0 {
                return;
            }
            tracing::info!(
                sessions = sessions.len(),
                codes,
                "the new configuration ended the sessions and codes it no longer allows"
            );
            let mut event = reload.clone();
            event.event = Event::ConfigRevoked;
            event.outcome = Outcome::Success;
            event.reason = Some(format!("{} sessions, {codes} codes", sessions.len()));
            state.db.record(&event, state.clock.now()).await;
        }
        Err(error) => {
            tracing::error!(%error, "cannot end what the new configuration no longer allows")
        }
    }
}
