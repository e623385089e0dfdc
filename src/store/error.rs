//! Storage errors, classified by what the caller does next.

/// What went wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: answer 503 so the platform retries.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("unique constraint violated")]
    UniqueViolation,
    #[error("not found")]
    NotFound,
    #[error("database configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The driver's error when the database cannot be reached (kept as the source).
    #[error("database unavailable: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// Any other driver error (kept as the source).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unreachable(e),
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::UniqueViolation,
            sqlx::Error::Database(db) if is_transient_database_error(db.code().as_deref()) => {
                Self::Unreachable(e)
            }
            sqlx::Error::Configuration(_) => Self::Config(e.to_string()),
            _ => Self::Database(e),
        }
    }
}

/// SQLite BUSY/LOCKED and PostgreSQL connection, shutdown and serialization classes mean
/// "try again", not "bad request".
fn is_transient_database_error(code: Option<&str>) -> bool {
    match code {
        Some("5" | "6" | "261" | "517") => true,
        Some(c) => {
            c.starts_with("08")
                || c.starts_with("57P")
                || c == "40001"
                || c == "40P01"
                || c == "53300"
        }
        None => false,
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Unreachable(_))
    }
}
