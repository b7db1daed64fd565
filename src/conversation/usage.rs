//! A conversation's LLM cost and token totals, as its metadata keeps them (upstream's
//! `accumulated_cost`, `prompt_tokens`, `completion_tokens`, `total_tokens`,
//! `llm_model`), taken from the `llm_metrics` the agent attaches to its actions.

use serde_json::{json, Map, Value};

/// The metadata fields for the totals in `llm_metrics`; None if it holds none.
pub(super) fn totals(llm_metrics: &Value) -> Option<Map<String, Value>> {
    let cost = llm_metrics.get("accumulated_cost")?.as_f64()?;
    let usage = llm_metrics.get("accumulated_token_usage");
    let count = |key: &str| {
        usage
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (prompt, completion) = (count("prompt_tokens"), count("completion_tokens"));
    let model = usage
        .and_then(|u| u.get("model"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    let mut fields = json!({
        "accumulated_cost": if cost.is_finite() { cost.max(0.0) } else { 0.0 },
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
    });
    if let (Some(m), Some(obj)) = (model, fields.as_object_mut()) {
        obj.insert("llm_model".into(), Value::from(m));
    }
    match fields {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_come_from_the_accumulated_usage() {
        let m = json!({
            "accumulated_cost": 0.25,
            "max_budget_per_task": null,
            "accumulated_token_usage": {"model": "openai/x", "prompt_tokens": 100, "completion_tokens": 20},
        });
        let t = totals(&m).expect("totals");
        assert_eq!(t["accumulated_cost"], 0.25);
        assert_eq!(t["prompt_tokens"], 100);
        assert_eq!(t["completion_tokens"], 20);
        assert_eq!(t["total_tokens"], 120);
        assert_eq!(t["llm_model"], "openai/x");
    }

    #[test]
    fn metrics_without_a_cost_or_with_garbage_give_nothing_or_zeros() {
        assert!(totals(&json!({})).is_none());
        assert!(totals(&json!({"accumulated_cost": "lots"})).is_none());
        let t = totals(
            &json!({"accumulated_cost": -3.0, "accumulated_token_usage": {"prompt_tokens": "x"}}),
        )
        .expect("totals");
        assert_eq!(t["accumulated_cost"], 0.0);
        assert_eq!(t["total_tokens"], 0);
        assert!(!t.contains_key("llm_model"));
    }
}
