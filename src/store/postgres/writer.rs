//! The PostgreSQL writer: one task, group commit.
//!
//! Writes queue on a channel; the task takes everything queued (up to [`MAX_BATCH`]),
//! commits it as one transaction, then answers each write in queue order. Writes that
//! arrive while a commit is in flight form the next batch, so many appends share one
//! round trip and one WAL flush. A run of consecutive event appends is one
//! `INSERT … SELECT FROM UNNEST(…)` statement.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::{has_nul, Pool};
use crate::store::{Append, CommitObserver, ConversationMetadata, OnDurable, StoreError};
use std::sync::Arc;

/// How many queued writes one transaction may commit together.
const MAX_BATCH: usize = 4096;
/// A batch that takes longer than this (a hung server) fails, and its connection is dropped.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a batch is tried again while the database cannot be reached before its
/// writes are reported failed.
const RETRY_FOR: Duration = Duration::from_secs(600);

/// A field-level metadata update.
pub struct Patch {
    pub id: String,
    pub patch: serde_json::Value,
    pub if_title: Option<String>,
}

/// One queued write and where its answer goes.
pub enum WriteOp {
    Event(Append),
    /// Cluster mode: an append by the holder of fencing token `.1`, refused unless it
    /// is still the conversation's newest claim (`conversation_owners`).
    FencedEvent(Append, i64),
    Conversation(
        Box<ConversationMetadata>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Delete(String, oneshot::Sender<Result<bool, StoreError>>),
    Patch(Patch, oneshot::Sender<Result<bool, StoreError>>),
    Settings(String, oneshot::Sender<Result<(), StoreError>>),
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

/// What a write asks for (held across the commit's awaits, so no callbacks in it).
enum Request {
    Event {
        conversation_id: Arc<str>,
        id: u64,
        json: Arc<str>,
        client_message_id: Option<Arc<str>>,
        fence: Option<i64>,
    },
    Conversation(Box<ConversationMetadata>),
    Delete(String),
    Patch(Patch),
    Settings(String),
    Flush,
}

/// Where a write's answer goes.
enum Reply {
    Event(OnDurable),
    Unit(oneshot::Sender<Result<(), StoreError>>),
    Bool(oneshot::Sender<Result<bool, StoreError>>),
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

impl WriteOp {
    fn split(self) -> (Request, Reply) {
        match self {
            WriteOp::Event(a) => (
                Request::Event {
                    conversation_id: a.conversation_id,
                    id: a.event.id,
                    json: a.event.json,
                    client_message_id: a.client_message_id,
                    fence: None,
                },
                Reply::Event(a.on_durable),
            ),
            WriteOp::FencedEvent(a, fence) => (
                Request::Event {
                    conversation_id: a.conversation_id,
                    id: a.event.id,
                    json: a.event.json,
                    client_message_id: a.client_message_id,
                    fence: Some(fence),
                },
                Reply::Event(a.on_durable),
            ),
            WriteOp::Conversation(m, r) => (Request::Conversation(m), Reply::Unit(r)),
            WriteOp::Delete(id, r) => (Request::Delete(id), Reply::Bool(r)),
            WriteOp::Patch(p, r) => (Request::Patch(p), Reply::Bool(r)),
            WriteOp::Settings(json, r) => (Request::Settings(json), Reply::Unit(r)),
            WriteOp::Flush(r) => (Request::Flush, Reply::Flush(r)),
        }
    }
}

impl Reply {
    /// Answers the write: `own` is its own outcome, `commit` the batch's. True if it
    /// was an event made durable.
    fn answer(self, own: Result<bool, StoreError>, commit: &Result<(), StoreError>) -> bool {
        let result = commit.clone().and(own);
        match self {
            Reply::Event(on_durable) => {
                let ok = result.is_ok();
                on_durable(result.map(|_| ()));
                ok
            }
            Reply::Unit(reply) => {
                let _ = reply.send(result.map(|_| ()));
                false
            }
            Reply::Bool(reply) => {
                let _ = reply.send(result);
                false
            }
            Reply::Flush(reply) => {
                let _ = reply.send(commit.clone());
                false
            }
        }
    }
}

/// Commits queued writes until the channel closes.
pub async fn run(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
    observer: Option<CommitObserver>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<Request>, Vec<Reply>) =
            batch.into_iter().map(WriteOp::split).unzip();
        let started = Instant::now();
        let (commit, outcomes) = if requests.iter().all(|r| matches!(r, Request::Flush)) {
            (Ok(()), requests.iter().map(|_| Ok(false)).collect())
        } else {
            commit_until_reachable(&pool, &requests).await
        };
        let took = started.elapsed();
        if let Err(e) = &commit {
            tracing::error!(writes = requests.len(), "PostgreSQL commit failed: {e}");
        }
        let mut events = 0;
        for (reply, own) in replies.into_iter().zip(outcomes) {
            events += usize::from(reply.answer(own, &commit));
        }
        if let Some(observe) = &observer {
            observe(took, events);
        }
    }
}

/// Commits `batch`, trying again while the database cannot be reached (for up to
/// [`RETRY_FOR`]): the writes behind it wait, so the ids of a conversation stay dense
/// and nothing queued is dropped because of an outage. A write refused for what it is
/// (a taken id, a fence) is answered at once.
async fn commit_until_reachable(
    pool: &Pool,
    batch: &[Request],
) -> (Result<(), StoreError>, Vec<Result<bool, StoreError>>) {
    let deadline = Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(100);
    let mut retrying = false;
    loop {
        let (commit, outcomes) = commit_batch(pool, batch, retrying).await;
        match &commit {
            Err(e) if is_transient(e) && Instant::now() + pause < deadline => {
                tracing::warn!(writes = batch.len(), retry_in = ?pause, "PostgreSQL unreachable, the writes wait: {e}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                retrying = true;
            }
            _ => return (commit, outcomes),
        }
    }
}

/// Whether a batch failed because the database could not be reached (worth trying
/// again), not because of what it holds.
fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(_) => true,
        StoreError::Postgres(e) => match e.as_db_error() {
            // Connection exceptions, shutdowns, a server not accepting connections yet,
            // too many connections.
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P") || code == "53300"
            }
            None => true,
        },
        _ => false,
    }
}

/// Runs `batch` in one transaction: the batch's outcome and each write's own. When
/// `retrying` (an earlier attempt's commit may have landed), an event found stored
/// with exactly its bytes counts as written.
async fn commit_batch(
    pool: &Pool,
    batch: &[Request],
    retrying: bool,
) -> (Result<(), StoreError>, Vec<Result<bool, StoreError>>) {
    let mut outcomes: Vec<Result<bool, StoreError>> = batch.iter().map(|_| Ok(false)).collect();
    let mut client = match pool.get().await {
        Ok(c) => c,
        Err(e) => return (Err(e.into()), outcomes),
    };
    let work = async {
        let tx = client.transaction().await?;
        let mut i = 0;
        while i < batch.len() {
            let run = batch[i..]
                .iter()
                .take_while(|r| matches!(r, Request::Event { .. }))
                .count();
            if run > 0 {
                insert_events(&tx, &batch[i..i + run], &mut outcomes[i..i + run], retrying).await?;
                i += run;
                continue;
            }
            outcomes[i] = apply(&tx, &batch[i]).await?;
            i += 1;
        }
        tx.commit().await?;
        Ok::<(), StoreError>(())
    };
    let result = match tokio::time::timeout(COMMIT_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unavailable(format!(
            "PostgreSQL did not commit within {COMMIT_TIMEOUT:?}"
        ))),
    };
    if result.is_err() {
        // Whatever state the session is in (aborted transaction, lost connection, a
        // commit of unknown outcome), it is not reused.
        drop(deadpool_postgres::Object::take(client));
    }
    (result, outcomes)
}

/// Inserts a run of event appends with one statement (and their client message ids with
/// another). An event whose id is already stored is refused alone, as SQLite's primary
/// key refuses it.
async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &[Request],
    outcomes: &mut [Result<bool, StoreError>],
    retrying: bool,
) -> Result<(), StoreError> {
    let appends: Vec<EventRow<'_>> = run
        .iter()
        .filter_map(|r| match r {
            Request::Event {
                conversation_id,
                id,
                json,
                client_message_id,
                fence,
            } => Some(EventRow {
                conversation_id,
                id: *id,
                json,
                client_message_id: client_message_id.as_deref(),
                fence: *fence,
            }),
            _ => None,
        })
        .collect();
    refuse_fenced(tx, &appends, outcomes).await?;
    let mut cids: Vec<&str> = Vec::with_capacity(appends.len());
    let mut ids: Vec<i64> = Vec::with_capacity(appends.len());
    let mut jsons: Vec<String> = Vec::with_capacity(appends.len());
    for (a, outcome) in appends.iter().zip(outcomes.iter_mut()) {
        if outcome.is_err() {
            continue;
        }
        let json = crate::store::compact::pack(a.json);
        if has_nul(a.conversation_id) || has_nul(&json) || a.client_message_id.is_some_and(has_nul)
        {
            *outcome = Err(StoreError::Unstorable(
                "a NUL character in an id or in raw event text",
            ));
            continue;
        }
        let Ok(id) = i64::try_from(a.id) else {
            *outcome = Err(StoreError::Unstorable("an event id beyond 2^63"));
            continue;
        };
        cids.push(a.conversation_id);
        ids.push(id);
        jsons.push(json.into_owned());
    }
    if cids.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (conversation_id, id, json)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[])
             ON CONFLICT DO NOTHING
             RETURNING conversation_id, id",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 3] = [&cids, &ids, &jsons];
    let rows = tx.query(&stmt, &params).await?;
    let mut inserted = HashSet::with_capacity(rows.len());
    for row in rows {
        inserted.insert((row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?));
    }
    if retrying && inserted.len() < ids.len() {
        // A commit of unknown outcome may have stored some of these already: those
        // whose stored bytes are exactly ours were written by that commit.
        let stmt = tx
            .prepare_cached(
                "SELECT e.conversation_id, e.id FROM events e
                 JOIN UNNEST($1::text[], $2::int8[], $3::text[]) AS w(conversation_id, id, json)
                   ON e.conversation_id = w.conversation_id AND e.id = w.id AND e.json = w.json",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 3] = [&cids, &ids, &jsons];
        for row in tx.query(&stmt, &params).await? {
            inserted.insert((row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?));
        }
    }
    let (mut key_cids, mut key_ids, mut key_events) = (Vec::new(), Vec::new(), Vec::new());
    for (a, outcome) in appends.iter().zip(outcomes.iter_mut()) {
        if outcome.is_err() {
            continue;
        }
        let key = (a.conversation_id.to_string(), a.id as i64);
        // The first write of a key takes it; a repeat (or a stored one) is refused.
        if !inserted.remove(&key) {
            *outcome = Err(StoreError::Unstorable(
                "an event with this id is already stored",
            ));
            continue;
        }
        if let Some(client_id) = a.client_message_id {
            key_cids.push(a.conversation_id);
            key_ids.push(client_id);
            key_events.push(key.1);
        }
    }
    if !key_cids.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO client_messages (conversation_id, client_id, event_id)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 3] = [&key_cids, &key_ids, &key_events];
        tx.execute(&stmt, &params).await?;
    }
    Ok(())
}

/// An event append's fields, borrowed from its request.
struct EventRow<'a> {
    conversation_id: &'a str,
    id: u64,
    json: &'a str,
    client_message_id: Option<&'a str>,
    fence: Option<i64>,
}

/// Refuses the fenced appends whose token is no longer their conversation's newest
/// claim. The owner rows are read `FOR SHARE`: a claim by another node waits for this
/// transaction, so no append of an older token commits after a newer claim.
async fn refuse_fenced(
    tx: &deadpool_postgres::Transaction<'_>,
    appends: &[EventRow<'_>],
    outcomes: &mut [Result<bool, StoreError>],
) -> Result<(), StoreError> {
    let mut fenced: Vec<&str> = appends
        .iter()
        .filter(|a| a.fence.is_some())
        .map(|a| a.conversation_id)
        .collect();
    if fenced.is_empty() {
        return Ok(());
    }
    fenced.sort_unstable();
    fenced.dedup();
    let stmt = tx
        .prepare_cached(
            "SELECT conversation_id, fence FROM conversation_owners
             WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id FOR SHARE",
        )
        .await?;
    let mut current = std::collections::HashMap::new();
    for row in tx.query(&stmt, &[&fenced]).await? {
        current.insert(row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?);
    }
    for (a, outcome) in appends.iter().zip(outcomes.iter_mut()) {
        if let Some(fence) = a.fence {
            if current.get(a.conversation_id) != Some(&fence) {
                *outcome = Err(StoreError::Fenced(a.conversation_id.to_string()));
            }
        }
    }
    Ok(())
}

/// Applies one write other than an event append. `Ok(Err(..))` is the write's own
/// refusal; an outer `Err` fails the batch.
async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    request: &Request,
) -> Result<Result<bool, StoreError>, StoreError> {
    match request {
        Request::Event { .. } | Request::Flush => Ok(Ok(false)),
        Request::Conversation(meta) => {
            let json = serde_json::to_string(meta)?;
            if has_nul(&meta.conversation_id) || has_nul(&meta.created_at) {
                return Ok(Err(StoreError::Unstorable("a NUL character in an id")));
            }
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO conversations (id, created_at, metadata) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata",
                )
                .await?;
            tx.execute(&stmt, &[&meta.conversation_id, &meta.created_at, &json])
                .await?;
            Ok(Ok(true))
        }
        Request::Delete(id) => {
            if has_nul(id) {
                return Ok(Ok(false));
            }
            tx.execute("DELETE FROM events WHERE conversation_id = $1", &[id])
                .await?;
            tx.execute(
                "DELETE FROM client_messages WHERE conversation_id = $1",
                &[id],
            )
            .await?;
            let n = tx
                .execute("DELETE FROM conversations WHERE id = $1", &[id])
                .await?;
            Ok(Ok(n > 0))
        }
        Request::Patch(p) => {
            if has_nul(&p.id) {
                return Ok(Ok(false));
            }
            let stmt = tx
                .prepare_cached("SELECT metadata FROM conversations WHERE id = $1 FOR UPDATE")
                .await?;
            let Some(row) = tx.query_opt(&stmt, &[&p.id]).await? else {
                return Ok(Ok(false));
            };
            let stored: String = row.try_get(0)?;
            let mut meta: serde_json::Value = match serde_json::from_str(&stored) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e.into())),
            };
            if let Some(title) = &p.if_title {
                if meta.get("title").and_then(|t| t.as_str()) != Some(title.as_str()) {
                    return Ok(Ok(false));
                }
            }
            crate::store::merge_patch::merge_patch(&mut meta, &p.patch);
            let json = meta.to_string();
            let stmt = tx
                .prepare_cached("UPDATE conversations SET metadata = $2 WHERE id = $1")
                .await?;
            tx.execute(&stmt, &[&p.id, &json]).await?;
            Ok(Ok(true))
        }
        Request::Settings(json) => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO settings (key, value) VALUES ('settings', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .await?;
            tx.execute(&stmt, &[json]).await?;
            Ok(Ok(true))
        }
    }
}
