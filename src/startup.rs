//! The application: shared state, the route table, and the server bound to its port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use arc_swap::ArcSwap;

use crate::clock::{Clock, SystemClock};
use crate::db::{Database, DbError};
use crate::identity::{self, ConfigErrors, IdentityConfig};
use crate::metrics::Metrics;
use crate::oidc::http::{FetchError, Fetcher};
use crate::oidc::keys::KeyStore;
use crate::oidc::userinfo::UserinfoCache;
use crate::routes;
use crate::sessions::{self, SessionCache};
use crate::settings::Settings;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The running configuration; a reload swaps it in one atomic step.
    pub config: ArcSwap<IdentityConfig>,
    pub db: Database,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    /// Provider metadata and signing keys.
    pub keys: KeyStore,
    /// Userinfo answers for Bearer access tokens.
    pub userinfo: UserinfoCache,
    /// Live sessions read from the database in the last seconds.
    pub session_cache: SessionCache,
    /// Held while a reload reads and swaps the configuration.
    pub reload_lock: tokio::sync::Mutex<()>,
    pub metrics: Arc<Metrics>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot build the HTTP client for identity providers: {0}")]
    HttpClient(#[from] FetchError),
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
        let db = Database::open(&settings.database_url)?;
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
        let metrics = Arc::new(Metrics::new(db.writer_counters()));
        let keys = KeyStore::new(Fetcher::new()?, clock.clone(), metrics.clone());
        let clock_for_userinfo = clock.clone();
        let session_cache = SessionCache::new(settings.cookie.cache_secs);
        let state = web::Data::new(AppState {
            config: ArcSwap::from_pointee(config),
            db,
            settings,
            clock,
            keys,
            userinfo: UserinfoCache::new(clock_for_userinfo, metrics.clone()),
            reload_lock: tokio::sync::Mutex::new(()),
            session_cache,
            metrics,
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .app_data(web::FormConfig::default().limit(64 * 1024))
                .app_data(web::JsonConfig::default().limit(64 * 1024))
                .wrap(access_log())
                .configure(routes::health::configure)
                .configure(routes::authenticate::configure)
                .configure(routes::session::configure)
                .configure(routes::login::configure)
                .configure(routes::config::configure)
        })
        .shutdown_timeout(30)
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

    /// Serves until SIGTERM or SIGINT; SIGTERM lets requests in flight finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let purger = tokio::spawn(purge_expired(self.state.clone()));
        let reloader = tokio::spawn(reload_on_sighup(self.state.clone()));
        let result = self.server.await;
        purger.abort();
        reloader.abort();
        result
    }
}

/// Reloads `identity.yaml` on every `SIGHUP`.
async fn reload_on_sighup(state: web::Data<AppState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /identity-config/reload");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let event = crate::audit::SecurityEvent::new(
            crate::audit::Event::ConfigReload,
            crate::audit::Outcome::Failure,
            crate::error::new_incident_id(),
        );
        let _ = crate::reload::reload(&state, event).await;
    }
}

/// Every minute, removes timed-out sessions, used tokens past their expiry, unfinished login
/// flows and unredeemed authentication codes.
async fn purge_expired(state: web::Data<AppState>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        ticks.tick().await;
        let now = state.clock.now();
        let idle_secs = i64::from(state.config.load().properties.session_timeout) * 60;
        // Three transactions, none holding two kinds of rows a request takes in another order.
        let db = &state.db;
        let purged = async {
            let mut purged = db
                .write(move |conn| sessions::purge_expired(conn, now, idle_secs))
                .await?;
            purged.flows = db
                .write(move |conn| crate::flows::purge_flows(conn, now))
                .await?;
            purged.codes = db
                .write(move |conn| crate::flows::codes::purge_codes(conn, now))
                .await?;
            Ok::<_, crate::members::StoreError>(purged)
        }
        .await;
        match purged {
            Ok(p) if p != sessions::Purged::default() => {
                tracing::debug!(
                    sessions = p.sessions,
                    tokens = p.tokens,
                    "purged expired rows"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot purge expired sessions"),
        }
    }
}

/// Request logging: the TCP peer (never a forwarded address a client could write), method,
/// path (never the query, which may hold codes or tokens), status, time.
fn access_log() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%a \"%{method}xi %U\" %s %Dms")
        .custom_request_replace("method", |req| req.method().to_string())
        .log_target("idgate::http")
}
