//! User settings (`/api/settings`): stored overrides on top of the server config.
//!
//! No settings file is needed: `config.toml` and the `LLM_*` environment are the defaults.

use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::config::Config;

/// Why posted settings were refused.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("settings must be a JSON object")]
    NotAnObject,
    #[error("`{0}` must be {1}")]
    BadType(String, &'static str),
    #[error("`condenser_max_size` must be at least 20")]
    CondenserTooSmall,
}

#[derive(Clone, Copy)]
enum T {
    Str,
    Bool,
    Int,
    Num,
    Any,
}

/// Known settings keys in upstream's order, with their types (all nullable).
const FIELDS: &[(&str, T)] = &[
    ("language", T::Str),
    ("agent", T::Str),
    ("max_iterations", T::Int),
    ("security_analyzer", T::Str),
    ("confirmation_mode", T::Bool),
    ("llm_model", T::Str),
    ("llm_api_key", T::Str),
    ("llm_base_url", T::Str),
    ("remote_runtime_resource_factor", T::Int),
    ("secrets_store", T::Any),
    ("enable_default_condenser", T::Bool),
    ("enable_sound_notifications", T::Bool),
    ("enable_proactive_conversation_starters", T::Bool),
    ("enable_solvability_analysis", T::Bool),
    ("user_consents_to_analytics", T::Bool),
    ("sandbox_base_container_image", T::Str),
    ("sandbox_runtime_container_image", T::Str),
    ("mcp_config", T::Any),
    ("search_api_key", T::Str),
    ("sandbox_api_key", T::Str),
    ("max_budget_per_task", T::Num),
    ("condenser_max_size", T::Int),
    ("email", T::Str),
    ("email_verified", T::Bool),
    ("git_user_name", T::Str),
    ("git_user_email", T::Str),
];

const SECRET_KEYS: &[&str] = &["llm_api_key", "search_api_key", "sandbox_api_key"];

/// The settings a server starts with: its configuration.
pub fn defaults(config: &Config) -> Map<String, Value> {
    let f = &config.file;
    let v = json!({
        "language": "en",
        "agent": f.core.default_agent,
        "max_iterations": f.core.max_iterations,
        "security_analyzer": f.security.security_analyzer,
        "confirmation_mode": f.security.confirmation_mode,
        "llm_model": f.llm.model,
        "llm_api_key": f.llm.api_key,
        "llm_base_url": f.llm.base_url,
        "remote_runtime_resource_factor": null,
        "secrets_store": {"provider_tokens": {}},
        "enable_default_condenser": f.core.enable_default_condenser,
        "enable_sound_notifications": false,
        "enable_proactive_conversation_starters": false,
        "enable_solvability_analysis": false,
        "user_consents_to_analytics": false,
        "sandbox_base_container_image": f.sandbox.base_container_image,
        "sandbox_runtime_container_image": f.sandbox.runtime_container_image,
        "mcp_config": null,
        "search_api_key": f.core.search_api_key,
        "sandbox_api_key": null,
        "max_budget_per_task": f.core.max_budget_per_task,
        "condenser_max_size": null,
        "email": null,
        "email_verified": null,
        "git_user_name": f.core.git_user_name,
        "git_user_email": f.core.git_user_email,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Effective settings: defaults overlaid with what was stored.
pub fn effective(config: &Config, stored: Option<&Value>) -> Map<String, Value> {
    let mut m = defaults(config);
    if let Some(Value::Object(s)) = stored {
        for (k, v) in s {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

/// The `GET /api/settings` body: secrets replaced by `*_set` flags.
pub fn public_view(effective: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (key, _) in FIELDS {
        let v = effective.get(*key).cloned().unwrap_or(Value::Null);
        if SECRET_KEYS.contains(key) {
            out.insert((*key).into(), Value::Null);
        } else {
            out.insert((*key).into(), v);
        }
    }
    out.insert("provider_tokens_set".into(), json!({}));
    let set = |k: &str| {
        effective
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    out.insert("llm_api_key_set".into(), set("llm_api_key").into());
    out.insert("search_api_key_set".into(), set("search_api_key").into());
    Value::Object(out)
}

/// Merges a posted subset into the stored settings, checking types.
pub fn merge(stored: Option<Value>, posted: Value) -> Result<Value, SettingsError> {
    let Value::Object(posted) = posted else {
        return Err(SettingsError::NotAnObject);
    };
    let mut out = match stored {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (key, value) in posted {
        let Some((_, ty)) = FIELDS.iter().find(|(k, _)| *k == key) else {
            tracing::debug!("ignoring unknown settings key {key}");
            continue;
        };
        let ok = value.is_null()
            || match ty {
                T::Str => value.is_string(),
                T::Bool => value.is_boolean(),
                T::Int => value.is_i64() || value.is_u64(),
                T::Num => value.is_number(),
                T::Any => true,
            };
        if !ok {
            let want = match ty {
                T::Str => "a string",
                T::Bool => "a boolean",
                T::Int => "an integer",
                T::Num => "a number",
                T::Any => "JSON",
            };
            return Err(SettingsError::BadType(key, want));
        }
        if key == "condenser_max_size" && value.as_i64().is_some_and(|n| n < 20) {
            return Err(SettingsError::CondenserTooSmall);
        }
        // An empty or absent secret keeps the stored one (the UI never sees it back).
        if SECRET_KEYS.contains(&key.as_str()) && value.as_str().is_some_and(str::is_empty) {
            continue;
        }
        out.insert(key, value);
    }
    Ok(Value::Object(out))
}
