//! The PostgreSQL schema, as numbered migrations applied once each at start.
//!
//! Every node runs [`migrate`] when it starts; an advisory lock makes concurrent starts
//! take turns, and `schema_migrations` records what was applied, so running it again is
//! a no-op. A new schema change is a new entry at the end of [`MIGRATIONS`], never an
//! edit of a published one.

use tokio_postgres::Client;

use crate::store::StoreError;

/// (version, SQL). Text columns use the "C" collation so that ordering is by bytes, as
/// in SQLite, whatever the database's locale.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE conversations (
    id TEXT COLLATE "C" PRIMARY KEY,
    created_at TEXT COLLATE "C" NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX conversations_created ON conversations (created_at DESC, id);
CREATE TABLE events (
    conversation_id TEXT COLLATE "C" NOT NULL,
    id BIGINT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (conversation_id, id)
);
CREATE TABLE client_messages (
    conversation_id TEXT COLLATE "C" NOT NULL,
    client_id TEXT COLLATE "C" NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, client_id)
);
CREATE TABLE settings (
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
)];

/// The advisory lock key that serialises migrations between nodes ("ohmigrat").
const LOCK_KEY: i64 = 0x6f68_6d69_6772_6174;

/// Applies every migration not yet recorded, in one transaction.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tracing::info!(version, "applying PostgreSQL migration");
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The newest schema version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}
