//! What can go wrong with the database: [`DbError`] for the connection itself, [`StoreError`] for
//! every query of the stores. "Not found" is never an error: lookups answer `Ok(None)`.

/// What can go wrong with the database itself.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedUrl(String),
    /// A path where a URL belongs.
    #[error(
        "unsupported database URL `{0}`: a database URL starts with its scheme; did you mean sqlite://{0}?"
    )]
    BarePath(String),
    /// The first connection failed; the driver's own message says why.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// A migration failed.
    #[error("cannot migrate {url}: {reason}")]
    Migrate { url: String, reason: String },
    /// No connection could be had from the pool in time (the database is down or saturated).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// What can go wrong in a store (every query module of [`crate::db`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the query failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Another member already has this email.
    #[error("a member with the email {0} already exists")]
    DuplicateEmail(String),
    /// Another member already has this username.
    #[error("the username {0} is already taken")]
    DuplicateUsername(String),
    /// A row that no version of idgate writes.
    #[error("corrupt member row: {0}")]
    Corrupt(String),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::Db(DbError::Query(e))
    }
}
