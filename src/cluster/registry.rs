//! The cluster-wide registry of running conversations: the Redis set `oh:running` holds
//! the ids of conversations whose agent was working on their owner. Owners keep it up to
//! date on every lease renewal; every node scans it and takes over the conversations
//! in it that no lease covers any more, so that a run goes on after its owner died
//! even when no client had the conversation open.

use redis::aio::ConnectionManager;

use super::ClusterError;

const RUNNING_KEY: &str = "oh:running";

/// The registry operations of one node.
#[derive(Clone)]
pub struct Registry {
    redis: ConnectionManager,
}

impl Registry {
    /// The registry in the Redis behind `redis`.
    pub fn new(redis: ConnectionManager) -> Self {
        Registry { redis }
    }

    /// Records whether `conversation_id`'s agent is working (on its owner).
    pub async fn set_running(
        &self,
        conversation_id: &str,
        running: bool,
    ) -> Result<(), ClusterError> {
        let cmd = if running { "SADD" } else { "SREM" };
        let _: i64 = redis::cmd(cmd)
            .arg(RUNNING_KEY)
            .arg(conversation_id)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Says that clients of this node watch `conversation_id`'s live output, for `ttl`
    /// (renewed while they do).
    pub async fn mark_watched(
        &self,
        conversation_id: &str,
        ttl: std::time::Duration,
    ) -> Result<(), ClusterError> {
        let () = redis::cmd("SET")
            .arg(format!("oh:watched:{conversation_id}"))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Whether clients of some other node watch `conversation_id`'s live output.
    pub async fn watched(&self, conversation_id: &str) -> Result<bool, ClusterError> {
        let n: i64 = redis::cmd("EXISTS")
            .arg(format!("oh:watched:{conversation_id}"))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(n > 0)
    }

    /// The running conversations whose lease nobody holds.
    pub async fn orphans(&self) -> Result<Vec<String>, ClusterError> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(RUNNING_KEY)
            .query_async(&mut self.redis.clone())
            .await?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let mut exists = redis::pipe();
        for id in &ids {
            exists.cmd("EXISTS").arg(format!("oh:lease:{id}"));
        }
        let held: Vec<u8> = exists.query_async(&mut self.redis.clone()).await?;
        Ok(ids
            .into_iter()
            .zip(held)
            .filter(|(_, h)| *h == 0)
            .map(|(id, _)| id)
            .collect())
    }
}
