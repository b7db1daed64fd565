//! An [`LlmClient`] that reports every request to the [`Metrics`]: count, latency,
//! tokens, cost and errors by model.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;

use super::{LlmOutcome, Metrics};
use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError};

/// Prices per token (input, output) configured for the server; unset ones fall back to
/// the list price of a well-known model, else 0 (as the agent's `llm_metrics` do).
#[derive(Debug, Clone, Copy, Default)]
pub struct Prices {
    pub input: Option<f64>,
    pub output: Option<f64>,
}

impl Prices {
    fn for_model(self, model: &str) -> (f64, f64) {
        let listed = crate::llm::pricing::price(model).unwrap_or((0.0, 0.0));
        (
            self.input.unwrap_or(listed.0),
            self.output.unwrap_or(listed.1),
        )
    }
}

struct Metered {
    inner: Box<dyn LlmClient>,
    model: String,
    prices: (f64, f64),
    metrics: Arc<Metrics>,
}

/// `client` (for `model`), reporting to `metrics`.
pub fn metered(
    client: Box<dyn LlmClient>,
    model: &str,
    prices: Prices,
    metrics: Arc<Metrics>,
) -> Box<dyn LlmClient> {
    Box::new(Metered {
        inner: client,
        model: model.to_string(),
        prices: prices.for_model(model),
        metrics,
    })
}

#[async_trait]
impl LlmClient for Metered {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let result = self.inner.complete(request).await;
        let outcome = match &result {
            Ok(r) => LlmOutcome::Answered {
                prompt_tokens: r.usage.prompt_tokens,
                completion_tokens: r.usage.completion_tokens,
                cost: r.usage.prompt_tokens as f64 * self.prices.0
                    + r.usage.completion_tokens as f64 * self.prices.1,
            },
            Err(_) => LlmOutcome::Failed,
        };
        self.metrics
            .llm_request(&self.model, started.elapsed(), outcome);
        result
    }
}
