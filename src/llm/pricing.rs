//! List prices of well-known models, for `llm_metrics.accumulated_cost` when the
//! configuration gives none (`[llm] input_cost_per_token` / `output_cost_per_token`).

/// (model name prefix, USD per input token, USD per output token); longest prefix wins.
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.15e-6, 0.6e-6),
    ("gpt-4o", 2.5e-6, 10e-6),
    ("gpt-4.1-nano", 0.1e-6, 0.4e-6),
    ("gpt-4.1-mini", 0.4e-6, 1.6e-6),
    ("gpt-4.1", 2e-6, 8e-6),
    ("o4-mini", 1.1e-6, 4.4e-6),
    ("o3-mini", 1.1e-6, 4.4e-6),
    ("o3", 2e-6, 8e-6),
    ("claude-opus-4", 15e-6, 75e-6),
    ("claude-sonnet-4", 3e-6, 15e-6),
    ("claude-3-7-sonnet", 3e-6, 15e-6),
    ("claude-3-5-sonnet", 3e-6, 15e-6),
    ("claude-3-5-haiku", 0.8e-6, 4e-6),
];

/// (input, output) USD per token for `model` (provider prefix ignored), if known.
pub fn price(model: &str) -> Option<(f64, f64)> {
    let name = model.rsplit('/').next().unwrap_or(model);
    PRICES
        .iter()
        .filter(|(prefix, _, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(_, i, o)| (*i, *o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models_have_prices_and_the_longest_prefix_wins() {
        assert_eq!(price("openai/gpt-4o-mini"), Some((0.15e-6, 0.6e-6)));
        assert_eq!(price("gpt-4o-2024-08-06"), Some((2.5e-6, 10e-6)));
        assert_eq!(
            price("anthropic/claude-sonnet-4-20250514"),
            Some((3e-6, 15e-6))
        );
        assert_eq!(price("ollama/llama3.1"), None);
    }
}
