//! Retries with exponential backoff and jitter, honouring `Retry-After`.

use std::time::Duration;

use super::{ChatRequest, ChatResponse, LlmClient, LlmError};

/// How often and how patiently to retry (`[llm] num_retries`, `retry_*`).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub num_retries: u32,
    pub min_wait: Duration,
    pub max_wait: Duration,
    pub multiplier: f64,
}

/// Reported before each wait.
#[derive(Debug, Clone)]
pub struct RetryEvent {
    /// 1-based number of the retry about to happen.
    pub attempt: u32,
    pub max: u32,
    pub wait: Duration,
    pub error: LlmError,
}

impl RetryPolicy {
    /// The wait before retry `attempt` (1-based), with up to 25 % jitter.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.multiplier.max(0.0) * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let base = Duration::from_secs_f64(exp.clamp(
            self.min_wait.as_secs_f64(),
            self.max_wait.as_secs_f64().max(self.min_wait.as_secs_f64()),
        ));
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 4000.0;
        let wait = base.mul_f64(1.0 + jitter);
        // A provider's Retry-After is honoured up to our own longest wait.
        match retry_after {
            Some(after) => after.clamp(self.min_wait, self.max_wait.max(self.min_wait)),
            None => wait,
        }
    }
}

/// Calls `client` until it succeeds, fails for good, or retries run out.
pub async fn with_retries(
    client: &dyn LlmClient,
    request: &ChatRequest,
    policy: RetryPolicy,
    mut on_retry: impl FnMut(&RetryEvent),
) -> Result<ChatResponse, LlmError> {
    let mut attempt = 0;
    loop {
        match client.complete(request).await {
            Ok(r) => return Ok(r),
            Err(e) if e.retryable() && attempt < policy.num_retries => {
                attempt += 1;
                let after = match &e {
                    LlmError::RateLimited { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let event = RetryEvent {
                    attempt,
                    max: policy.num_retries,
                    wait: policy.wait(attempt, after),
                    error: e,
                };
                on_retry(&event);
                tokio::time::sleep(event.wait).await;
                // What the failed attempt streamed is not part of the answer.
                if let Some(sink) = &request.text_sink {
                    sink.restart();
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_respect_bounds_and_retry_after() {
        let p = RetryPolicy {
            num_retries: 5,
            min_wait: Duration::from_secs(8),
            max_wait: Duration::from_secs(64),
            multiplier: 8.0,
        };
        let w1 = p.wait(1, None);
        let w3 = p.wait(3, None);
        assert!(
            w1 >= Duration::from_secs(8) && w1 <= Duration::from_secs(10),
            "{w1:?}"
        );
        assert!(
            w3 >= Duration::from_secs(32) && w3 <= Duration::from_secs(40),
            "{w3:?}"
        );
        assert!(p.wait(10, None) <= Duration::from_secs(80));
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(20))),
            Duration::from_secs(20)
        );
        // A provider asking for an hour gets our longest wait.
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(64)
        );
    }
}
