//! Cluster mode (`REDIS_URL`): several servers share one PostgreSQL database and one
//! Redis. Each conversation is owned by one node through a lease ([`lease`]); the other
//! nodes follow its events from the database and forward their clients' commands to the
//! owner ([`bus`]). See docs/cluster.md.

pub mod bus;
pub mod lease;
pub mod registry;

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

pub use bus::{Bus, Forwarded, Signal, Taken};
pub use lease::{Acquired, Holder, Lease, Leases};
pub use registry::Registry;

/// The `error_id` of the notice stored when a node takes a conversation over from a
/// node that died: the shell's state was lost (the model sees it too).
pub const TAKEOVER_ERROR_ID: &str = "STATUS$RUNTIME_LOST";

/// The text of that notice.
pub const TAKEOVER_NOTICE: &str = "The server running this conversation stopped and another one took it over: the shell's state (working directory, environment variables, running processes) was lost. Files in the workspace are kept.";

/// `[cluster]`: how nodes share conversations (used only with `redis_url`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// How long a conversation's owner keeps it without renewing, in milliseconds; a
    /// dead owner's conversations move to another node after this long.
    pub lease_ms: u64,
    /// How often a follower reads the database for events it was not told about, in
    /// milliseconds (the bound on staleness when a Redis message is lost).
    pub poll_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease_ms: 10_000,
            poll_ms: 500,
        }
    }
}

/// Errors of the cluster layer.
#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer in time")]
    Timeout,
    #[error("the conversation's owner refused the command: {0}")]
    Rejected(String),
    #[error("malformed cluster message: {0}")]
    Protocol(String),
}

/// This node's membership: its id, its leases and its bus.
pub struct Cluster {
    /// This process's id in the cluster (unique per start).
    pub node: String,
    pub leases: Leases,
    pub bus: Arc<Bus>,
    pub registry: Registry,
    pub config: ClusterConfig,
    redis_ok: AtomicBool,
    redis: redis::aio::ConnectionManager,
}

impl Cluster {
    /// Connects to Redis at `url` and starts listening; background work stops with `shutdown`.
    pub async fn connect(
        url: &str,
        config: ClusterConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        let client = redis::Client::open(url)?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let redis = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(manager_config),
        )
        .await
        .map_err(|_| ClusterError::Timeout)??;
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "node".into());
        let node = format!(
            "{host}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let lease_ms = config.lease_ms.max(100);
        let cluster = Arc::new(Cluster {
            leases: Leases::new(redis.clone(), node.clone(), lease_ms),
            bus: Bus::new(redis.clone(), node.clone()),
            registry: Registry::new(redis.clone()),
            node,
            config,
            redis_ok: AtomicBool::new(true),
            redis,
        });
        tokio::spawn(cluster.bus.clone().listen(client, shutdown.clone()));
        tokio::spawn(cluster.clone().heartbeat(shutdown));
        tracing::info!(node = %cluster.node, lease_ms, "cluster mode");
        Ok(cluster)
    }

    /// Whether Redis answers (and this node receives the cluster's messages).
    pub fn redis_ok(&self) -> bool {
        self.redis_ok.load(Ordering::Relaxed) && self.bus.subscribed()
    }

    /// The follower's database poll period.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.config.poll_ms.clamp(20, 60_000))
    }

    /// The lease time.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.leases.lease_ms())
    }

    async fn heartbeat(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut redis = self.redis.clone();
            let ping = redis::cmd("PING");
            let ok = matches!(
                tokio::time::timeout(
                    Duration::from_secs(2),
                    ping.query_async::<String>(&mut redis)
                )
                .await,
                Ok(Ok(_))
            );
            if ok != self.redis_ok.swap(ok, Ordering::Relaxed) {
                if ok {
                    tracing::info!("Redis is back");
                } else {
                    tracing::error!("Redis is unreachable");
                }
            }
        }
    }
}
