//! The settings of one turn: the user's settings over the server's [`AgentOptions`],
//! read again at every user message.

use serde_json::{Map, Value};
use std::time::Duration;

use super::AgentOptions;
use crate::events::Action;
use crate::llm::{self, LlmSettings, RetryPolicy};

/// The message when no LLM is configured.
const NO_LLM: &str = "No LLM is configured. Choose a model (and API key) in Settings, or start the server with LLM_MODEL, LLM_API_KEY and LLM_BASE_URL (or [llm] in config.toml).";

/// The settings the agent works with until the next user message.
#[derive(Debug, Clone)]
pub(super) struct Turn {
    pub llm: LlmSettings,
    pub retry: RetryPolicy,
    pub max_iterations: u64,
    pub max_budget: Option<f64>,
    pub confirmation_mode: bool,
    /// Condense once the history holds more events than this.
    pub condenser_max_size: Option<u64>,
    /// The security analyzer (the user's choice over the server's); None: analysis off.
    pub analyzer: Option<crate::security::Analyzer>,
    /// Configured (input, output) prices per token, if any.
    costs: (Option<f64>, Option<f64>),
}

/// Why there is no turn: the status id for clients and the error reason.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TurnError {
    pub status_id: &'static str,
    pub message: String,
}

impl Turn {
    /// The turn for the effective user `settings`; an error when the LLM cannot be used.
    pub fn from_settings(
        map: &Map<String, Value>,
        options: &AgentOptions,
    ) -> Result<Turn, TurnError> {
        let s = crate::settings::UserSettings::from_map(map);
        if let Some(why) = s.key_mismatch() {
            return Err(TurnError {
                status_id: "STATUS$ERROR_LLM_AUTHENTICATION",
                message: why,
            });
        }
        let llm = &options.llm;
        let Some(model) = s
            .llm_model
            .or_else(|| llm.model.clone())
            .filter(|m| !m.is_empty())
        else {
            return Err(TurnError {
                status_id: "STATUS$ERROR_LLM_NOT_CONFIGURED",
                message: NO_LLM.into(),
            });
        };
        Ok(Turn {
            llm: LlmSettings {
                model,
                api_key: s.llm_api_key.or_else(|| llm.api_key.clone()),
                base_url: s.llm_base_url.or_else(|| llm.base_url.clone()),
                timeout: Duration::from_secs_f64(llm.timeout.unwrap_or(300.0).clamp(1.0, 3600.0)),
                temperature: llm.temperature,
                top_p: llm.top_p,
                max_output_tokens: llm.max_output_tokens,
                stream: llm.stream,
            },
            retry: RetryPolicy {
                num_retries: llm.num_retries,
                min_wait: Duration::from_secs_f64(llm.retry_min_wait.clamp(0.0, 3600.0)),
                max_wait: Duration::from_secs_f64(llm.retry_max_wait.clamp(0.0, 3600.0)),
                multiplier: llm.retry_multiplier,
            },
            max_iterations: s.max_iterations.unwrap_or(options.max_iterations),
            max_budget: s.max_budget_per_task.or(options.max_budget_per_task),
            confirmation_mode: s.confirmation_mode.unwrap_or(options.confirmation_mode),
            condenser_max_size: s.condenser_max_size.or(options.condenser_max_size),
            analyzer: match s.security_analyzer.as_deref() {
                None => options.security_analyzer,
                Some(name) => crate::security::Analyzer::parse(name).unwrap_or_else(|why| {
                    tracing::warn!("{why}; using the server's analyzer");
                    options.security_analyzer
                }),
            },
            costs: (llm.input_cost_per_token, llm.output_cost_per_token),
        })
    }

    /// (input, output) price per token: configured prices win, else the list price of
    /// a well-known model, else 0.
    pub fn prices(&self) -> (f64, f64) {
        let listed = llm::pricing::price(&self.llm.model).unwrap_or((0.0, 0.0));
        (
            self.costs.0.unwrap_or(listed.0),
            self.costs.1.unwrap_or(listed.1),
        )
    }

    /// Whether `action` waits for the user's confirmation, as upstream decides it: in
    /// confirmation mode, commands and Python cells (they carry `confirmation_state` on
    /// the wire) of high risk; with no analyzer configured, every one of them (their risk
    /// is unknown).
    pub fn needs_confirmation(&self, action: &Action) -> bool {
        if !self.confirmation_mode {
            return false;
        }
        let risk = match action {
            Action::Run(a) => a.security_risk,
            Action::RunIpython(a) => a.security_risk,
            _ => return false,
        };
        match self.analyzer {
            Some(_) => risk == 2,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CmdRunArgs, ThinkArgs};
    use serde_json::json;

    fn settings(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn run(risk: i64) -> Action {
        let mut args: CmdRunArgs =
            serde_json::from_value(json!({"command": "ls"})).expect("a run action");
        args.security_risk = risk;
        Action::Run(args)
    }

    #[test]
    fn user_settings_override_the_server_options() {
        let options = super::super::tests::options();
        let turn = Turn::from_settings(
            &settings(json!({
                "llm_model": "anthropic/claude",
                "llm_api_key": "",
                "max_iterations": 7,
                "max_budget_per_task": 1.5,
                "confirmation_mode": true,
            })),
            &options,
        )
        .expect("a turn");
        assert_eq!(turn.llm.model, "anthropic/claude");
        assert_eq!(turn.llm.api_key, None, "an empty key is no key");
        assert_eq!(turn.max_iterations, 7);
        assert_eq!(turn.max_budget, Some(1.5));
        assert!(turn.confirmation_mode);
    }

    #[test]
    fn without_user_settings_the_server_options_apply() {
        let options = super::super::tests::options();
        let turn =
            Turn::from_settings(&settings(json!({"max_iterations": 0})), &options).expect("a turn");
        assert_eq!(turn.llm.model, "openai/scripted");
        assert_eq!(
            turn.max_iterations, options.max_iterations,
            "0 is no limit override"
        );
        assert_eq!(turn.max_budget, None);
        assert!(!turn.confirmation_mode);
    }

    #[test]
    fn no_model_is_a_not_configured_error() {
        let mut options = super::super::tests::options();
        options.llm.model = None;
        let err = Turn::from_settings(&Map::new(), &options).expect_err("no model");
        assert_eq!(err.status_id, "STATUS$ERROR_LLM_NOT_CONFIGURED");
        assert_eq!(err.message, NO_LLM);
    }

    #[test]
    fn configured_prices_win_over_list_prices() {
        let mut options = super::super::tests::options();
        options.llm.model = Some("openai/gpt-4o".into());
        options.llm.input_cost_per_token = Some(1.0);
        let turn = Turn::from_settings(&Map::new(), &options).expect("a turn");
        let listed = llm::pricing::price("openai/gpt-4o").unwrap_or((0.0, 0.0));
        assert_eq!(turn.prices(), (1.0, listed.1));
    }

    #[test]
    fn confirmation_is_needed_for_high_risk_or_for_everything_without_an_analyzer() {
        let mut turn =
            Turn::from_settings(&Map::new(), &super::super::tests::options()).expect("a turn");
        assert!(
            !turn.needs_confirmation(&run(2)),
            "confirmation mode is off"
        );
        turn.confirmation_mode = true;
        turn.analyzer = Some(crate::security::Analyzer::Both);
        assert!(turn.needs_confirmation(&run(2)));
        assert!(!turn.needs_confirmation(&run(-1)), "an analyzer rated it");
        assert!(!turn.needs_confirmation(&run(0)));
        assert!(!turn.needs_confirmation(&run(1)));
        turn.analyzer = None;
        assert!(
            turn.needs_confirmation(&run(0)),
            "no analyzer: every command"
        );
        assert!(turn.needs_confirmation(&run(-1)));
        let think = Action::Think(ThinkArgs::default());
        assert!(!turn.needs_confirmation(&think));
    }
}
