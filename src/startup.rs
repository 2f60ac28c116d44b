//! The application: the server bound to its port, the route table in one place, and the
//! background tasks (purge, reload on `SIGHUP`, stop on `SIGTERM`, `SIGINT` or `SIGQUIT`).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, web};

use crate::audit::{Event, Outcome, SecurityEvent};
use crate::clock::{Clock, SystemClock};
use crate::db::{self, Database, DbError};
use crate::identity::{self, ConfigErrors, IdentityConfig};
use crate::oidc::http::FetchError;
use crate::settings::Settings;
use crate::state::AppState;
use crate::{ids, reload, routes};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot build the HTTP client for identity providers: {0}")]
    HttpClient(#[from] FetchError),
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Loads the configuration, opens (and migrates) the database and binds the listener.
    /// `listen` may use port 0: [`Application::port`] tells the port chosen.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let config = identity::load(&settings.config_path)?;
        let db = Database::open_with(&settings.database_url, settings.durability)?;
        Self::build_with(settings, config, db, Arc::new(SystemClock))
    }

    /// Builds from parts already loaded (tests inject a clock this way).
    pub fn build_with(
        settings: Settings,
        config: IdentityConfig,
        db: Database,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let listener =
            TcpListener::bind(&settings.listen).map_err(|source| StartupError::Listen {
                addr: settings.listen.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: settings.listen.clone(),
                source,
            })?
            .port();
        let issuers = config.provider_issuers();
        let allowed = |provider: &str, email: &str| config.allows(provider, email);
        let checked = db
            .conn()
            .map_err(db::StoreError::from)
            .and_then(|mut conn| {
                let found = db::members::carry_over_bindings(&mut conn, &issuers)?;
                // What the configuration no longer allows ends at a start as at a reload.
                let revoked = db::sessions::revoke_disallowed(&mut conn, &allowed)?;
                Ok((
                    found,
                    revoked,
                    db::members::noncanonical_members(&mut conn)?,
                ))
            });
        match checked {
            Ok((found, (sessions, codes), noncanonical)) => {
                reload::log_carried_over(found);
                if !sessions.is_empty() || codes > 0 {
                    tracing::info!(
                        sessions = sessions.len(),
                        codes,
                        "the configuration ended the sessions and codes it no longer allows"
                    );
                }
                for (id, email) in noncanonical {
                    tracing::warn!(
                        member_id = id,
                        %email,
                        "this member's email is not in canonical form and cannot sign in (see docs/operations.md, upgrading)"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "cannot check the stored bindings and emails"),
        }
        let state = web::Data::new(AppState::new(settings, config, db, clock)?);
        let app_state = state.clone();
        let base = state.settings.base_path().to_owned();
        let https = state
            .settings
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https");
        let server = HttpServer::new(move || {
            App::new()
                .wrap(security_headers(https))
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .app_data(web::FormConfig::default().limit(64 * 1024))
                .app_data(web::JsonConfig::default().limit(64 * 1024))
                .wrap(from_fn(access_log))
                .configure(routes::configure_under(base.clone()))
        })
        .shutdown_timeout(30)
        // idgate listens for the stop signals itself (see [`Signals`]), from before it says it
        // serves.
        .disable_signals()
        .listen(listener)
        .map_err(|source| StartupError::Listen {
            addr: state.settings.listen.clone(),
            source,
        })?
        .run();
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM, SIGINT or SIGQUIT (see [`Signals`]), listening for them from now.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let signals = Signals::listen()?;
        self.run(signals).await
    }

    /// Serves until one of `signals` stops it; SIGTERM lets requests in flight finish.
    pub async fn run(self, signals: Signals) -> std::io::Result<()> {
        let Signals {
            terminate,
            interrupt,
            quit,
            hangup,
        } = signals;
        let purger = tokio::spawn(purge_expired(self.state.clone()));
        let reloader = tokio::spawn(reload_on_sighup(self.state.clone(), hangup));
        let stopper = tokio::spawn(stop_on_signal(
            self.server.handle(),
            terminate,
            interrupt,
            quit,
        ));
        let result = self.server.await;
        purger.abort();
        reloader.abort();
        stopper.abort();
        result
    }
}

/// The signals idgate answers, listened for from the moment they are made: a signal that
/// arrives before the server's first turn is then handled as any other, not by the system's
/// default (which ends the process at once, for `SIGHUP` too).
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    /// `None` when the system refused it: reloads then go through the HTTP endpoint only.
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Listens for SIGTERM, SIGINT, SIGQUIT and SIGHUP; within a Tokio runtime.
    pub fn listen() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let hangup = match signal(SignalKind::hangup()) {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /identity-config/reload");
                None
            }
        };
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hangup,
        })
    }
}

/// Stops the server on the first stop signal: gracefully on SIGTERM (requests in flight finish,
/// within the shutdown timeout), at once on SIGINT and SIGQUIT.
async fn stop_on_signal(
    server: actix_web::dev::ServerHandle,
    mut terminate: tokio::signal::unix::Signal,
    mut interrupt: tokio::signal::unix::Signal,
    mut quit: tokio::signal::unix::Signal,
) {
    let graceful = tokio::select! {
        _ = terminate.recv() => true,
        _ = interrupt.recv() => false,
        _ = quit.recv() => false,
    };
    if graceful {
        tracing::info!("SIGTERM: stopping once the requests in flight are answered");
    } else {
        tracing::info!("SIGINT or SIGQUIT: stopping now");
    }
    server.stop(graceful).await;
}

/// Builds the service and serves until a stop signal, on a runtime of its own: what `idgate
/// serve` does. The signals are listened for before the log says that idgate serves.
pub fn serve(settings: Settings) -> Result<(), StartupError> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone())?;
        let signals = Signals::listen().map_err(StartupError::Serve)?;
        tracing::info!(
            listen = %settings.listen,
            port = app.port(),
            config = %settings.config_path.display(),
            database = %app.state().db.url().redacted(),
            durability = settings.durability.as_str(),
            "idgate is serving"
        );
        app.run(signals).await.map_err(StartupError::Serve)
    })
}

/// Reloads `identity.yaml` on every `SIGHUP`.
async fn reload_on_sighup(
    state: web::Data<AppState>,
    hangups: Option<tokio::signal::unix::Signal>,
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    while hangups.recv().await.is_some() {
        let event = SecurityEvent::new(
            Event::ConfigReload,
            Outcome::Failure,
            ids::new_incident_id(),
        );
        let _ = reload::reload(&state, event).await;
    }
}

/// Every minute, removes timed-out sessions, used tokens past their expiry, unfinished login
/// flows, unredeemed authentication codes and security-log rows older than `securityLogDays`.
async fn purge_expired(state: web::Data<AppState>) {
    // The first purge a minute after the start, not while the service (or an operator's
    // command) is still setting up.
    let every = std::time::Duration::from_secs(60);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        match state.purge_expired().await {
            Ok(p) if p != db::sessions::Purged::default() => {
                tracing::debug!(
                    sessions = p.sessions,
                    tokens = p.tokens,
                    flows = p.flows,
                    codes = p.codes,
                    events = p.events,
                    "purged expired rows"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot purge expired rows"),
        }
    }
}

/// Headers on every answer: `X-Content-Type-Options: nosniff`, and HSTS when people reach
/// idgate over https.
fn security_headers(https: bool) -> actix_web::middleware::DefaultHeaders {
    let headers =
        actix_web::middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff"));
    if https {
        headers.add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        headers
    }
}

/// Request logging: the TCP peer (never a forwarded address a client could write), method,
/// path (never the query, which may hold codes or tokens), status, and the time until the answer
/// was ready. The proxies' checks (`/auth`, `/forward-auth`), one for every request to the apps,
/// are left out: the proxy logs those requests itself, and `idgate_session_checks_total` counts
/// the checks by outcome (see docs/operations.md, "Logs"). A `tracing` event of its own, so that
/// a JSON line carries the message and the target `idgate::http` and nothing else.
async fn access_log<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let skipped = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| req.path().strip_prefix(state.settings.base_path()))
        .is_some_and(|rest| matches!(rest, "/auth" | "/forward-auth"));
    if skipped {
        return next.call(req).await;
    }
    let started = std::time::Instant::now();
    let peer = req.peer_addr().map(|address| address.ip());
    let method = req.method().clone();
    let path = req.path().to_owned();
    let answer = next.call(req).await;
    let status = match &answer {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let peer: &dyn std::fmt::Display = match &peer {
        Some(ip) => ip,
        None => &"-",
    };
    tracing::info!(
        target: "idgate::http",
        "{peer} \"{method} {path}\" {} {millis:.6}ms",
        status.as_u16()
    );
    answer
}
