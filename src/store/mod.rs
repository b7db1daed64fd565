//! Durable storage: events, conversation metadata and settings behind [`EventStore`].
//!
//! The embedded default is SQLite ([`SqliteStore`]); with a `postgres://` database URL
//! it is PostgreSQL ([`PostgresStore`]), another implementation of the same trait.

mod compact;
mod merge_patch;
mod metadata;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use thiserror::Error;

pub use metadata::{default_title, utc_now as metadata_utc_now, ConversationMetadata};
pub use postgres::{latest_schema_version as postgres_schema_version, PostgresStore};
pub use sqlite::SqliteStore;

/// Errors of a store backend.
#[derive(Debug, Error, Clone)]
pub enum StoreError {
    /// SQLite failed (shared, so one failed batch can answer every caller in it).
    #[error("database error: {0}")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    /// The file system failed while `context`.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Nothing was written: the group commit this write was part of failed.
    #[error("not written: {0}")]
    BatchFailed(&'static str),
    #[error("the store is closed")]
    Closed,
    /// A stored record does not parse.
    #[error("corrupt record: {0}")]
    Corrupt(#[source] Arc<serde_json::Error>),
    /// PostgreSQL refused a statement or the connection to it failed.
    #[error("PostgreSQL error: {}", describe_postgres(.0))]
    Postgres(#[source] Arc<tokio_postgres::Error>),
    /// The database cannot be reached (no connection within the timeout, a hung server).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// This backend cannot hold the value (nothing of it was written).
    #[error("cannot be stored: {0}")]
    Unstorable(&'static str),
}

/// The server's own message (`FATAL 3D000: database "x" does not exist`) when it sent
/// one, else the driver's (`error connecting to server: …`).
fn describe_postgres(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(Arc::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(e))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(Arc::new(e))
    }
}

impl StoreError {
    /// An I/O failure while `context` (a short phrase naming what was being done).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

/// One stored event: its id and its exact JSON text.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: u64,
    pub json: Arc<str>,
    /// When it became durable, for live events (none for events read back).
    pub durable_at: Option<std::time::Instant>,
}

/// Told about every group commit: how long it took and how many events it made durable.
pub type CommitObserver = Arc<dyn Fn(std::time::Duration, usize) + Send + Sync>;

/// Runs once the append it belongs to is durable (or failed), in commit order.
pub type OnDurable = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// An event to append durably.
pub struct Append {
    pub conversation_id: Arc<str>,
    pub event: StoredEvent,
    /// The sender's own id of a user message, remembered with the event so that a
    /// retried send is not stored twice (docs/protocol.md, "Message delivery").
    pub client_message_id: Option<Arc<str>>,
    pub on_durable: OnDurable,
}

/// Which stored events to read.
#[derive(Debug, Clone, Copy)]
pub struct EventRange {
    /// First id (inclusive); with `reverse`, the lowest id still returned.
    pub start: u64,
    /// Last id (inclusive), if bounded.
    pub end: Option<u64>,
    pub limit: usize,
    /// Newest first.
    pub reverse: bool,
    /// Stop adding events once the page holds this many bytes (at least one is returned).
    pub max_bytes: usize,
}

/// The durable home of every conversation's events, metadata and the settings.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Queues an append; `on_durable` runs after it is committed. Appends of one
    /// conversation are committed in the order they were queued.
    fn append(&self, append: Append);
    /// Waits until every append queued so far is durable.
    async fn flush(&self) -> Result<(), StoreError>;
    async fn events(
        &self,
        conversation_id: &str,
        range: EventRange,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    async fn max_event_id(&self, conversation_id: &str) -> Result<Option<u64>, StoreError>;
    /// The id of the event stored for a client's message id, if one was.
    async fn client_message_event(
        &self,
        conversation_id: &str,
        client_id: &str,
    ) -> Result<Option<u64>, StoreError>;
    async fn put_conversation(&self, meta: ConversationMetadata) -> Result<(), StoreError>;
    async fn conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Option<ConversationMetadata>, StoreError>;
    /// Merges `patch` (a JSON object) into conversation `id`'s metadata, atomically; with
    /// `if_title`, only while its title is still that. True if a row changed.
    async fn patch_conversation(
        &self,
        conversation_id: &str,
        patch: Value,
        if_title: Option<String>,
    ) -> Result<bool, StoreError>;
    /// Conversations, newest `created_at` first.
    async fn conversations(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ConversationMetadata>, StoreError>;
    /// Deletes a conversation and its events; false if it did not exist.
    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, StoreError>;
    async fn settings(&self) -> Result<Option<Value>, StoreError>;
    async fn put_settings(&self, settings: Value) -> Result<(), StoreError>;
    /// Whether the store can serve reads and writes now (`/health`). An embedded store
    /// is always reachable; a networked one checks its server.
    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
