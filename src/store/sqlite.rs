//! The embedded SQLite store: WAL, one writer thread with group commit, pooled readers.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

use super::{
    Append, CommitObserver, ConversationMetadata, EventRange, EventStore, StoreError, StoredEvent,
};

/// How many queued operations one transaction may commit together.
const MAX_BATCH: usize = 4096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_created ON conversations(created_at);
CREATE TABLE IF NOT EXISTS events (
    conversation_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (conversation_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_messages (
    conversation_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, client_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// A field-level metadata update.
struct Patch {
    id: String,
    json: String,
    if_title: Option<String>,
}

enum WriteOp {
    Event(Append),
    Conversation(
        Box<ConversationMetadata>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Delete(String, oneshot::Sender<Result<bool, StoreError>>),
    Patch(Patch, oneshot::Sender<Result<bool, StoreError>>),
    Settings(String, oneshot::Sender<Result<(), StoreError>>),
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

/// SQLite-backed [`EventStore`] in `<dir>/openhands.db`.
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::UnboundedSender<WriteOp>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Bounds concurrent reads (and so open read connections).
    read_slots: Arc<tokio::sync::Semaphore>,
}

/// Concurrent readers at most.
const MAX_READERS: usize = 8;

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database under `dir` and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_observed(dir, None)
    }

    /// [`SqliteStore::open`], telling `observer` about every group commit.
    pub fn open_observed(dir: &Path, observer: Option<CommitObserver>) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join("openhands.db");
        make_private(dir, &path)?;
        let conn = open(&path)?;
        conn.execute_batch(SCHEMA)?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, observer))
            .map_err(|e| StoreError::io("starting the writer thread", e))?;
        Ok(SqliteStore {
            path,
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_slots: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        })
    }

    /// Runs `f` on a pooled read connection on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let slot = self
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let pooled = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = open(&path)?;
                    c.pragma_update(None, "query_only", true)?;
                    c
                }
            };
            let result = f(&conn);
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::io("running a read", std::io::Error::other(e)))?
    }

    fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        self.writer.send(op).map_err(|_| StoreError::Closed)
    }
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
    observer: Option<CommitObserver>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let (took, events) = commit_batch(&mut conn, batch);
        if let Some(observe) = &observer {
            observe(took, events);
        }
    }
}

/// What to tell each operation's waiter once the batch's fate is known.
enum Done {
    Event(super::OnDurable, Result<(), StoreError>),
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Bool(
        oneshot::Sender<Result<bool, StoreError>>,
        Result<bool, StoreError>,
    ),
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

/// Commits `batch` as one transaction and answers every operation in it; returns how
/// long the transaction took (fsync included) and how many events it made durable.
fn commit_batch(conn: &mut Connection, batch: Vec<WriteOp>) -> (std::time::Duration, usize) {
    let started = std::time::Instant::now();
    let mut done = Vec::with_capacity(batch.len());
    let mut events = 0;
    let commit = (|| -> Result<(), StoreError> {
        let tx = conn.transaction()?;
        let mut aborted = false;
        for op in batch {
            if aborted {
                done.push(abort(op));
                continue;
            }
            done.push(apply(&tx, op));
            // Some errors (disk full, I/O) roll the whole transaction back: what
            // follows must not run in autocommit mode and pretend to be part of it.
            aborted = tx.is_autocommit();
        }
        if aborted {
            return Err(StoreError::BatchFailed("the transaction was rolled back"));
        }
        tx.commit()?;
        Ok(())
    })();
    let took = started.elapsed();
    for d in done {
        match d {
            Done::Event(cb, r) => {
                let r = commit.clone().and(r);
                events += usize::from(r.is_ok());
                cb(r)
            }
            Done::Unit(tx, r) => {
                let _ = tx.send(commit.clone().and(r));
            }
            Done::Bool(tx, r) => {
                let _ = tx.send(commit.clone().and(r));
            }
            Done::Flush(tx) => {
                let _ = tx.send(commit.clone());
            }
        }
    }
    (took, events)
}

/// The answer for an operation that was not attempted because its batch failed.
fn abort(op: WriteOp) -> Done {
    let e = || Err(StoreError::BatchFailed("the batch failed"));
    match op {
        WriteOp::Event(a) => Done::Event(a.on_durable, e()),
        WriteOp::Conversation(_, reply) | WriteOp::Settings(_, reply) => Done::Unit(reply, e()),
        WriteOp::Delete(_, reply) | WriteOp::Patch(_, reply) => {
            Done::Bool(reply, e().map(|()| false))
        }
        WriteOp::Flush(reply) => Done::Flush(reply),
    }
}

fn apply(tx: &rusqlite::Transaction<'_>, op: WriteOp) -> Done {
    match op {
        WriteOp::Event(a) => {
            let r = tx
                .prepare_cached(
                    "INSERT INTO events (conversation_id, id, json) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        &*a.conversation_id,
                        a.event.id as i64,
                        &*super::compact::pack(&a.event.json)
                    ])
                })
                .map(|_| ())
                .map_err(StoreError::from)
                .and_then(|()| remember_client_id(tx, &a));
            Done::Event(a.on_durable, r)
        }
        WriteOp::Conversation(meta, reply) => {
            let r = serde_json::to_string(&meta)
                .map_err(StoreError::from)
                .and_then(|json| {
                    tx.prepare_cached(
                        "INSERT INTO conversations (id, created_at, metadata) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET metadata = excluded.metadata",
                    )
                    .and_then(|mut s| {
                        s.execute(params![meta.conversation_id, meta.created_at, json])
                    })
                    .map(|_| ())
                    .map_err(StoreError::from)
                });
            Done::Unit(reply, r)
        }
        WriteOp::Delete(id, reply) => {
            let r = (|| -> Result<bool, StoreError> {
                tx.execute("DELETE FROM events WHERE conversation_id = ?1", params![id])?;
                tx.execute(
                    "DELETE FROM client_messages WHERE conversation_id = ?1",
                    params![id],
                )?;
                let n = tx.execute("DELETE FROM conversations WHERE id = ?1", params![id])?;
                Ok(n > 0)
            })();
            Done::Bool(reply, r)
        }
        WriteOp::Patch(p, reply) => {
            let r = match &p.if_title {
                None => tx.execute(
                    "UPDATE conversations SET metadata = json_patch(metadata, ?1) WHERE id = ?2",
                    params![p.json, p.id],
                ),
                Some(title) => tx.execute(
                    "UPDATE conversations SET metadata = json_patch(metadata, ?1)
                     WHERE id = ?2 AND json_extract(metadata, '$.title') = ?3",
                    params![p.json, p.id, title],
                ),
            };
            Done::Bool(reply, r.map(|n| n > 0).map_err(StoreError::from))
        }
        WriteOp::Settings(json, reply) => {
            let r = tx
                .execute(
                    "INSERT INTO settings (key, value) VALUES ('settings', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![json],
                )
                .map(|_| ())
                .map_err(StoreError::from);
            Done::Unit(reply, r)
        }
        WriteOp::Flush(reply) => Done::Flush(reply),
    }
}

/// Records the client's id of an appended message, in the event's own transaction, so
/// that a retry is recognised even after a crash or restart.
fn remember_client_id(tx: &rusqlite::Transaction<'_>, a: &Append) -> Result<(), StoreError> {
    let Some(client_id) = &a.client_message_id else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO client_messages (conversation_id, client_id, event_id)
         VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        &*a.conversation_id,
        &**client_id,
        a.event.id as i64
    ])?;
    Ok(())
}

fn row_to_meta(json: String) -> Result<ConversationMetadata, StoreError> {
    serde_json::from_str(&json).map_err(StoreError::from)
}

#[async_trait]
impl EventStore for SqliteStore {
    fn append(&self, append: Append) {
        if let Err(tokio::sync::mpsc::error::SendError(WriteOp::Event(a))) =
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
        let cid = cid.to_string();
        self.read(move |c| {
            let end = range
                .end
                .map(|e| e.min(i64::MAX as u64) as i64)
                .unwrap_or(i64::MAX);
            let start = range.start.min(i64::MAX as u64) as i64;
            let limit = range.limit.min(i64::MAX as usize) as i64;
            let sql = if range.reverse {
                "SELECT id, json FROM events WHERE conversation_id = ?1 AND id >= ?2 AND id <= ?3
                 ORDER BY id DESC LIMIT ?4"
            } else {
                "SELECT id, json FROM events WHERE conversation_id = ?1 AND id >= ?2 AND id <= ?3
                 ORDER BY id ASC LIMIT ?4"
            };
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(params![cid, start, end, limit], |r| {
                Ok(StoredEvent {
                    id: r.get::<_, i64>(0)? as u64,
                    json: Arc::from(super::compact::unpack(r.get::<_, String>(1)?)),
                    durable_at: None,
                })
            })?;
            let mut page = Vec::new();
            let mut bytes = 0;
            for row in rows {
                let ev = row?;
                bytes += ev.json.len();
                page.push(ev);
                if bytes >= range.max_bytes {
                    break;
                }
            }
            Ok(page)
        })
        .await
    }

    async fn client_message_event(
        &self,
        cid: &str,
        client_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let (cid, client_id) = (cid.to_string(), client_id.to_string());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT event_id FROM client_messages WHERE conversation_id = ?1 AND client_id = ?2",
            )?
            .query_row(params![cid, client_id], |r| r.get::<_, i64>(0))
            .optional()
            .map(|id| id.map(|i| i as u64))
            .map_err(StoreError::from)
        })
        .await
    }

    async fn max_event_id(&self, cid: &str) -> Result<Option<u64>, StoreError> {
        let cid = cid.to_string();
        self.read(move |c| {
            let max: Option<i64> = c.query_row(
                "SELECT MAX(id) FROM events WHERE conversation_id = ?1",
                params![cid],
                |r| r.get(0),
            )?;
            Ok(max.map(|m| m as u64))
        })
        .await
    }

    async fn put_conversation(&self, meta: ConversationMetadata) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Conversation(Box::new(meta), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn conversation(&self, cid: &str) -> Result<Option<ConversationMetadata>, StoreError> {
        let cid = cid.to_string();
        self.read(move |c| {
            let json: Option<String> = c
                .query_row(
                    "SELECT metadata FROM conversations WHERE id = ?1",
                    params![cid],
                    |r| r.get(0),
                )
                .optional()?;
            json.map(row_to_meta).transpose()
        })
        .await
    }

    async fn patch_conversation(
        &self,
        id: &str,
        patch: Value,
        if_title: Option<String>,
    ) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        let patch = Patch {
            id: id.to_string(),
            json: patch.to_string(),
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
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT metadata FROM conversations ORDER BY created_at DESC, id LIMIT ?1 OFFSET ?2",
            )?;
            let rows = stmt.query_map(params![limit as i64, offset.min(i64::MAX as usize) as i64], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for json in rows {
                out.push(row_to_meta(json?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_conversation(&self, cid: &str) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Delete(cid.to_string(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn settings(&self) -> Result<Option<Value>, StoreError> {
        self.read(|c| {
            let json: Option<String> = c
                .query_row(
                    "SELECT value FROM settings WHERE key = 'settings'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            json.map(|j| serde_json::from_str(&j).map_err(StoreError::from))
                .transpose()
        })
        .await
    }

    async fn put_settings(&self, settings: Value) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Settings(settings.to_string(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// The store holds the LLM key and every conversation: its folder is the user's alone
/// (0700) and its database file too (0600; SQLite gives its -wal and -shm files the
/// database file's mode).
fn make_private(dir: &Path, db: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |what: &Path, e: std::io::Error| {
        StoreError::io(format!("making {} private", what.display()), e)
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| fail(dir, e))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)
        .map_err(|e| fail(db, e))?;
    for file in [
        db.to_path_buf(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
    ] {
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(&file, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod client_id_tests {
    use super::*;

    fn append(
        store: &SqliteStore,
        cid: &str,
        id: u64,
        key: Option<&str>,
    ) -> oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        store.append(Append {
            conversation_id: Arc::from(cid),
            event: StoredEvent {
                id,
                json: Arc::from(format!(r#"{{"id":{id}}}"#)),
                durable_at: None,
            },
            client_message_id: key.map(Arc::from),
            on_durable: Box::new(move |r| drop(tx.send(r))),
        });
        rx
    }

    #[tokio::test]
    async fn client_message_ids_survive_a_reopen_and_go_with_their_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .put_conversation(ConversationMetadata::new("c1", None))
            .await
            .unwrap();
        append(&store, "c1", 0, None).await.unwrap().unwrap();
        append(&store, "c1", 1, Some("k")).await.unwrap().unwrap();
        append(&store, "c2", 0, Some("k")).await.unwrap().unwrap();
        assert_eq!(
            store.client_message_event("c1", "k").await.unwrap(),
            Some(1)
        );
        assert_eq!(
            store.client_message_event("c1", "other").await.unwrap(),
            None
        );
        drop(store);

        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(
            store.client_message_event("c1", "k").await.unwrap(),
            Some(1)
        );
        assert_eq!(
            store.client_message_event("c2", "k").await.unwrap(),
            Some(0)
        );
        assert!(store.delete_conversation("c1").await.unwrap());
        assert_eq!(store.client_message_event("c1", "k").await.unwrap(), None);
        assert_eq!(
            store.client_message_event("c2", "k").await.unwrap(),
            Some(0),
            "other conversations keep theirs"
        );
    }
}
