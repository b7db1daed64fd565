//! The PostgreSQL store: a connection pool for reads, one writer task with group commit,
//! versioned migrations at start. Event JSON is kept as TEXT of the exact bytes (as
//! [`super::compact`] packs it), never as JSONB, so what goes in comes out byte for byte,
//! `\u0000` escapes included.

mod migrations;
mod writer;

use async_trait::async_trait;
use serde_json::Value;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::{
    CommitObserver, ConversationMetadata, EventRange, EventStore, StoreError, StoredEvent,
};
use writer::WriteOp;

pub use migrations::latest_version as latest_schema_version;

type Pool = deadpool_postgres::Pool;

/// Connections at most (reads share them; the writer takes one per batch).
const MAX_CONNECTIONS: usize = 16;
/// How long to wait for a connection (or to make one) before a call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the health check waits for `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// PostgreSQL-backed [`EventStore`].
pub struct PostgresStore {
    pool: Pool,
    writer: mpsc::UnboundedSender<WriteOp>,
}

/// PostgreSQL text cannot hold a NUL character (JSON keeps it escaped as `\u0000`, which
/// is fine); such a value cannot be stored nor, so, be found.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`; a socket directory as
    /// `?host=/path`), applies the schema migrations and starts the writer.
    pub async fn connect(url: &str, observer: Option<CommitObserver>) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("openhands-server");
        }
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(MAX_CONNECTIONS)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("building the pool: {e}")))?;
        {
            let mut client = pool.get().await?;
            migrations::migrate(&mut client).await?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(pool.clone(), rx, observer));
        Ok(PostgresStore { pool, writer: tx })
    }

    fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        self.writer.send(op).map_err(|_| StoreError::Closed)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }
}

fn row_to_meta(json: &str) -> Result<ConversationMetadata, StoreError> {
    serde_json::from_str(json).map_err(StoreError::from)
}

fn to_i64(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

#[async_trait]
impl EventStore for PostgresStore {
    fn append(&self, append: super::Append) {
        if let Err(mpsc::error::SendError(WriteOp::Event(a))) =
            self.writer.send(WriteOp::Event(append))
        {
            (a.on_durable)(Err(StoreError::Closed));
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Flush(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn events(&self, cid: &str, range: EventRange) -> Result<Vec<StoredEvent>, StoreError> {
        if has_nul(cid) {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let sql = if range.reverse {
            "SELECT id, json FROM events WHERE conversation_id = $1 AND id >= $2 AND id <= $3
             ORDER BY id DESC LIMIT $4"
        } else {
            "SELECT id, json FROM events WHERE conversation_id = $1 AND id >= $2 AND id <= $3
             ORDER BY id ASC LIMIT $4"
        };
        let stmt = client.prepare_cached(sql).await?;
        let start = to_i64(range.start);
        let end = range.end.map_or(i64::MAX, to_i64);
        let limit = to_i64(range.limit as u64);
        let params: [&(dyn ToSql + Sync); 4] = [&cid, &start, &end, &limit];
        let rows = client
            .query_raw(&stmt, params.iter().map(|p| *p as &dyn ToSql))
            .await?;
        futures::pin_mut!(rows);
        let mut page = Vec::new();
        let mut bytes = 0;
        // Rows are read as they arrive, so a page of huge events stops at `max_bytes`.
        while let Some(row) = futures::StreamExt::next(&mut rows).await {
            let row = row?;
            let json = super::compact::unpack(row.try_get::<_, String>(1)?);
            bytes += json.len();
            page.push(StoredEvent {
                id: row.try_get::<_, i64>(0)? as u64,
                json: Arc::from(json),
                durable_at: None,
            });
            if bytes >= range.max_bytes {
                break;
            }
        }
        Ok(page)
    }

    async fn max_event_id(&self, cid: &str) -> Result<Option<u64>, StoreError> {
        if has_nul(cid) {
            return Ok(None);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT MAX(id) FROM events WHERE conversation_id = $1")
            .await?;
        let max: Option<i64> = client.query_one(&stmt, &[&cid]).await?.try_get(0)?;
        Ok(max.map(|m| m as u64))
    }

    async fn client_message_event(
        &self,
        cid: &str,
        client_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        if has_nul(cid) || has_nul(client_id) {
            return Ok(None);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT event_id FROM client_messages WHERE conversation_id = $1 AND client_id = $2",
            )
            .await?;
        let row = client.query_opt(&stmt, &[&cid, &client_id]).await?;
        Ok(row
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
            .map(|id| id as u64))
    }

    async fn put_conversation(&self, meta: ConversationMetadata) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Conversation(Box::new(meta), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn conversation(&self, cid: &str) -> Result<Option<ConversationMetadata>, StoreError> {
        if has_nul(cid) {
            return Ok(None);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT metadata FROM conversations WHERE id = $1")
            .await?;
        let row = client.query_opt(&stmt, &[&cid]).await?;
        row.map(|r| row_to_meta(&r.try_get::<_, String>(0)?))
            .transpose()
    }

    async fn patch_conversation(
        &self,
        id: &str,
        patch: Value,
        if_title: Option<String>,
    ) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        let patch = writer::Patch {
            id: id.to_string(),
            patch,
            if_title,
        };
        self.send(WriteOp::Patch(patch, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn conversations(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ConversationMetadata>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT metadata FROM conversations ORDER BY created_at DESC, id LIMIT $1 OFFSET $2",
            )
            .await?;
        let (limit, offset) = (to_i64(limit as u64), to_i64(offset as u64));
        let rows = client.query(&stmt, &[&limit, &offset]).await?;
        rows.iter()
            .map(|r| row_to_meta(&r.try_get::<_, String>(0)?))
            .collect()
    }

    async fn delete_conversation(&self, cid: &str) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Delete(cid.to_string(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn settings(&self) -> Result<Option<Value>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT value FROM settings WHERE key = 'settings'")
            .await?;
        let row = client.query_opt(&stmt, &[]).await?;
        row.map(|r| -> Result<Value, StoreError> {
            Ok(serde_json::from_str(&r.try_get::<_, String>(0)?)?)
        })
        .transpose()
    }

    async fn put_settings(&self, settings: Value) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Settings(settings.to_string(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn health(&self) -> Result<(), StoreError> {
        let check = async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await?;
            Ok::<(), StoreError>(())
        };
        tokio::time::timeout(HEALTH_TIMEOUT, check)
            .await
            .map_err(|_| StoreError::Unavailable("PostgreSQL did not answer in time".into()))?
    }
}
