//! Ownership leases in Redis: one owner per conversation, each acquisition with a
//! fencing token that only grows.
//!
//! Keys: `oh:lease:{id}` holds `"{node} {token}"` and expires after the lease time unless
//! renewed; `oh:fence:{id}` is the conversation's token counter (never deleted).

use redis::aio::ConnectionManager;
use redis::Script;
use std::sync::LazyLock;

use super::ClusterError;

/// Takes a free lease atomically: a new token from the counter, then the lease key.
/// A counter below the database's newest token (`ARGV[3]`) means Redis lost its data:
/// the counter is raised and marked held, and nothing is taken this time, so that a live
/// owner can restore its lease first.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
if counter < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('SET', KEYS[3], ARGV[3])
  return {0, 2}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
local orphaned = redis.call('EXISTS', KEYS[3])
redis.call('SET', KEYS[3], token)
return {token, orphaned}",
    )
});

/// Extends the lease only while it is still ours (compare-and-extend). A lease that is
/// gone while no newer token was handed out (Redis restarted without its data, or it
/// expired and nobody took it) is set again, with the counter and the held mark.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if v then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') > tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1",
    )
});

/// Deletes the lease only while it is still ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

fn lease_key(conversation_id: &str) -> String {
    format!("oh:lease:{conversation_id}")
}

fn fence_key(conversation_id: &str) -> String {
    format!("oh:fence:{conversation_id}")
}

fn held_key(conversation_id: &str) -> String {
    format!("oh:held:{conversation_id}")
}

/// A lease this node holds: the fencing token of its acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: u64,
    /// The previous owner never released it (it died or lost its lease).
    pub orphaned: bool,
}

/// Who holds a conversation's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub token: u64,
}

/// What [`Leases::acquire`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lease is ours.
    Taken(Lease),
    /// Another node holds it.
    Held,
    /// Redis had lost the conversation's counter (it was rebuilt from the database's
    /// token): try again after a lease time, so that a live owner restores its lease.
    Rebuilt,
}

/// The lease operations of one node.
#[derive(Clone)]
pub struct Leases {
    redis: ConnectionManager,
    node: String,
    lease_ms: u64,
}

impl Leases {
    /// Leases held as `node`, lasting `lease_ms` unless renewed.
    pub fn new(redis: ConnectionManager, node: String, lease_ms: u64) -> Self {
        Leases {
            redis,
            node,
            lease_ms,
        }
    }

    /// How long a lease lasts without renewal, in milliseconds.
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    fn value(&self, lease: Lease) -> String {
        format!("{} {}", self.node, lease.token)
    }

    /// Takes the lease of `conversation_id` if nobody holds it; `stored_fence` is the
    /// newest token the database knows for it (0 for none).
    pub async fn acquire(
        &self,
        conversation_id: &str,
        stored_fence: u64,
    ) -> Result<Acquired, ClusterError> {
        let (token, flag): (u64, u64) = ACQUIRE
            .key(lease_key(conversation_id))
            .key(fence_key(conversation_id))
            .key(held_key(conversation_id))
            .arg(&self.node)
            .arg(self.lease_ms)
            .arg(stored_fence)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match (token, flag) {
            (0, 2) => Acquired::Rebuilt,
            (0, _) => Acquired::Held,
            (token, flag) => Acquired::Taken(Lease {
                token,
                orphaned: flag == 1,
            }),
        })
    }

    /// Extends a lease we hold; false if it was lost (expired, or taken by another node).
    pub async fn renew(&self, conversation_id: &str, lease: Lease) -> Result<bool, ClusterError> {
        let renewed: u64 = RENEW
            .key(lease_key(conversation_id))
            .key(fence_key(conversation_id))
            .key(held_key(conversation_id))
            .arg(self.value(lease))
            .arg(self.lease_ms)
            .arg(lease.token)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Gives a lease up (nothing happens if it is no longer ours).
    pub async fn release(&self, conversation_id: &str, lease: Lease) -> Result<(), ClusterError> {
        let _: u64 = RELEASE
            .key(lease_key(conversation_id))
            .key(held_key(conversation_id))
            .arg(self.value(lease))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// The current holder of `conversation_id`'s lease, if any.
    pub async fn holder(&self, conversation_id: &str) -> Result<Option<Holder>, ClusterError> {
        let value: Option<String> = redis::cmd("GET")
            .arg(lease_key(conversation_id))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(value.and_then(|v| {
            let (node, token) = v.rsplit_once(' ')?;
            Some(Holder {
                node: node.to_string(),
                token: token.parse().ok()?,
            })
        }))
    }
}
