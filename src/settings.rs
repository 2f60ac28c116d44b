//! Process settings for `serve`: where the configuration is, where to listen, which database,
//! and the public address. Flags beat environment variables beat defaults (clap does the
//! layering, see `cli`).

use std::path::PathBuf;

use url::Url;

use crate::db::Durability;
use crate::flows::ResponseMode;
use crate::sessions::CookieSettings;

/// The defaults of `idgate serve` (`docs/configuration.md`).
pub const DEFAULT_CONFIG: &str = "./identity.yaml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "sqlite://idgate.db";

#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub listen: String,
    pub database_url: String,
    /// What an answered write survives.
    pub durability: Durability,
    /// Where people reach idgate; when unset, taken from the request (development only).
    pub public_url: Option<Url>,
    /// The session cookie's name and the sessions' absolute lifetime.
    pub cookie: CookieSettings,
    /// How providers send the authorization response back to `/callback`.
    pub response_mode: ResponseMode,
}

impl Settings {
    /// The path idgate serves under (`/sso` for `--public-url https://docs.example.org/sso`),
    /// without a trailing `/`; empty at the root of its host.
    pub fn base_path(&self) -> &str {
        self.public_url
            .as_ref()
            .map_or("", |u| u.path().trim_end_matches('/'))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config_path: PathBuf::from(DEFAULT_CONFIG),
            listen: DEFAULT_LISTEN.to_string(),
            database_url: DEFAULT_DATABASE.to_string(),
            durability: Durability::PowerLoss,
            public_url: None,
            cookie: CookieSettings::default(),
            response_mode: ResponseMode::Query,
        }
    }
}
