//! Token and cost totals of a conversation's LLM calls, reported as `llm_metrics` on
//! agent actions.

use serde_json::{json, Value};

use super::turn::Turn;
use crate::llm::ChatResponse;

/// What the agent's LLM calls have used so far (since the agent started).
#[derive(Debug, Default)]
pub(super) struct Metrics {
    pub cost: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    per_turn: u64,
    response_id: String,
    model: String,
}

impl Metrics {
    /// Adds one response's usage; its cost needs the turn's model and prices.
    pub fn record(&mut self, r: &ChatResponse, turn: Option<&Turn>) {
        self.prompt_tokens += r.usage.prompt_tokens;
        self.completion_tokens += r.usage.completion_tokens;
        self.cache_read_tokens += r.usage.cache_read_tokens;
        self.cache_write_tokens += r.usage.cache_write_tokens;
        self.per_turn = r.usage.prompt_tokens + r.usage.completion_tokens;
        self.response_id = r.id.clone();
        if let Some(turn) = turn {
            self.model = turn.llm.model.clone();
            let (input, output) = turn.prices();
            self.cost +=
                r.usage.prompt_tokens as f64 * input + r.usage.completion_tokens as f64 * output;
        }
    }

    /// Continues from the totals of a stored `llm_metrics` object (after a restart).
    pub fn restore(&mut self, stored: &Value) {
        let usage = &stored["accumulated_token_usage"];
        let count = |key: &str| usage[key].as_u64().unwrap_or(0);
        if let Some(cost) = stored["accumulated_cost"]
            .as_f64()
            .filter(|c| c.is_finite())
        {
            self.cost = cost.max(0.0);
        }
        self.prompt_tokens = count("prompt_tokens");
        self.completion_tokens = count("completion_tokens");
        self.cache_read_tokens = count("cache_read_tokens");
        self.cache_write_tokens = count("cache_write_tokens");
        if let Some(model) = usage["model"].as_str() {
            self.model = model.to_string();
        }
    }

    /// The `llm_metrics` object of upstream's events.
    pub fn to_value(&self, max_budget: Option<f64>) -> Value {
        json!({
            "accumulated_cost": self.cost,
            "max_budget_per_task": max_budget,
            "accumulated_token_usage": {
                "model": self.model,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "context_window": 0,
                "per_turn_token": self.per_turn,
                "response_id": self.response_id,
            },
            "costs": [],
            "response_latencies": [],
            "token_usages": [],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;
    use serde_json::Map;

    fn response(id: &str, prompt: u64, completion: u64) -> ChatResponse {
        ChatResponse {
            id: id.into(),
            content: None,
            tool_calls: Vec::new(),
            usage: Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                cache_read_tokens: 1,
                cache_write_tokens: 0,
            },
            raw: Value::Null,
        }
    }

    fn turn(input: f64, output: f64) -> Turn {
        let mut options = super::super::tests::options();
        options.llm.input_cost_per_token = Some(input);
        options.llm.output_cost_per_token = Some(output);
        Turn::from_settings(&Map::new(), &options).expect("a model is configured")
    }

    #[test]
    fn usage_accumulates_and_costs_use_the_configured_prices() {
        let mut m = Metrics::default();
        let t = turn(0.5, 2.0);
        m.record(&response("r1", 10, 5), Some(&t));
        m.record(&response("r2", 4, 1), Some(&t));
        assert_eq!(m.cost, 10.0 * 0.5 + 5.0 * 2.0 + 4.0 * 0.5 + 2.0);
        let v = m.to_value(Some(100.0));
        assert_eq!(v["max_budget_per_task"], 100.0);
        let usage = &v["accumulated_token_usage"];
        assert_eq!(usage["prompt_tokens"], 14);
        assert_eq!(usage["completion_tokens"], 6);
        assert_eq!(usage["cache_read_tokens"], 2);
        assert_eq!(usage["per_turn_token"], 5);
        assert_eq!(usage["response_id"], "r2");
        assert_eq!(usage["model"], "openai/scripted");
    }

    #[test]
    fn totals_continue_from_stored_metrics() {
        let mut m = Metrics::default();
        let t = turn(0.5, 2.0);
        m.record(&response("r1", 10, 5), Some(&t));
        let stored = m.to_value(None);
        let mut again = Metrics::default();
        again.restore(&stored);
        again.record(&response("r2", 4, 1), Some(&t));
        assert_eq!(again.cost, 10.0 * 0.5 + 5.0 * 2.0 + 4.0 * 0.5 + 2.0);
        assert_eq!(
            again.to_value(None)["accumulated_token_usage"]["prompt_tokens"],
            14
        );
        let mut junk = Metrics::default();
        junk.restore(&json!({"accumulated_cost": "x", "accumulated_token_usage": 3}));
        assert_eq!(junk.cost, 0.0);
    }

    #[test]
    fn the_metrics_object_keeps_upstreams_key_order() {
        let keys: Vec<String> = Metrics::default()
            .to_value(None)
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "accumulated_cost",
                "max_budget_per_task",
                "accumulated_token_usage",
                "costs",
                "response_latencies",
                "token_usages"
            ]
        );
    }
}
