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
    #[error("The LLM base URL changed but no API key was given: enter the API key again for the new base URL (a saved key is only ever sent to the base URL it was saved with).")]
    KeyNeedsReentry,
}

/// The effective settings as the agent uses them (the wire keeps the map, whose keys and
/// order are upstream's). Empty strings mean "not set".
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct UserSettings {
    pub llm_model: Option<String>,
    pub llm_api_key: Option<String>,
    pub llm_base_url: Option<String>,
    /// The base URL the key was saved with ([`KEY_BASE_URL`]).
    pub llm_api_key_base_url: Option<String>,
    pub max_iterations: Option<u64>,
    pub max_budget_per_task: Option<f64>,
    pub confirmation_mode: Option<bool>,
    pub agent: Option<String>,
    pub language: Option<String>,
    pub security_analyzer: Option<String>,
}

impl UserSettings {
    /// The typed view of an effective settings map (see [`effective`]). Fields of the wrong
    /// type (never written by `POST /api/settings`, which checks them) count as unset.
    pub fn from_map(map: &Map<String, Value>) -> UserSettings {
        let field = |key: &str| map.get(key).cloned().unwrap_or(Value::Null);
        let text = |key: &str| {
            field(key)
                .as_str()
                .map(str::to_string)
                .filter(|v| !v.is_empty())
        };
        UserSettings {
            llm_model: text("llm_model"),
            llm_api_key: text("llm_api_key"),
            llm_base_url: text("llm_base_url"),
            llm_api_key_base_url: text(KEY_BASE_URL),
            max_iterations: field("max_iterations").as_u64().filter(|m| *m > 0),
            max_budget_per_task: field("max_budget_per_task").as_f64(),
            confirmation_mode: field("confirmation_mode").as_bool(),
            agent: text("agent"),
            language: text("language"),
            security_analyzer: text("security_analyzer"),
        }
    }

    /// Why the API key may not be used with the base URL, if so: a key is only ever sent
    /// to the base URL it was saved with.
    pub fn key_mismatch(&self) -> Option<String> {
        let (base, bound) = (
            normalized_url(self.llm_base_url.as_deref()),
            normalized_url(self.llm_api_key_base_url.as_deref()),
        );
        (self.llm_api_key.is_some() && base != bound).then(|| {
            format!(
                "The API key was saved for {} but the LLM base URL is now {}: enter the API key again in Settings (a key is only ever sent to the base URL it was saved with).",
                bound.as_deref().unwrap_or("the provider's default URL"),
                base.as_deref().unwrap_or("the provider's default URL"),
            )
        })
    }
}

/// Where the effective API key may be sent: the base URL it was saved with (the
/// configuration's key goes with the configuration's base URL). Not a `FIELDS` key:
/// clients neither see nor set it.
pub const KEY_BASE_URL: &str = "llm_api_key_base_url";

fn base_url_of(m: &Map<String, Value>, key: &str) -> Option<String> {
    normalized_url(m.get(key).and_then(Value::as_str))
}

/// A base URL as compared: trimmed, without a trailing `/`; None when empty.
fn normalized_url(url: Option<&str>) -> Option<String> {
    url.map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
}

/// Why the effective API key may not be used with the effective base URL, if so.
pub fn key_mismatch(effective: &Map<String, Value>) -> Option<String> {
    UserSettings::from_map(effective).key_mismatch()
}

/// `POST /api/settings`: merges `posted` into `stored`. A new API key is bound to the
/// base URL it is saved with; changing the base URL without a new key is refused while
/// a key is set, so that no key is ever sent to a host it was not meant for.
pub fn update(
    config: &Config,
    stored: Option<Value>,
    posted: Value,
) -> Result<Value, SettingsError> {
    let before = effective(config, stored.as_ref());
    let new_key = posted
        .get("llm_api_key")
        .and_then(Value::as_str)
        .is_some_and(|k| !k.is_empty());
    let mut merged = merge(stored, posted)?;
    let after = effective(config, Some(&merged));
    if new_key {
        if let Value::Object(m) = &mut merged {
            let bound = base_url_of(&after, "llm_base_url");
            m.insert(
                KEY_BASE_URL.into(),
                bound.map_or(Value::Null, Value::String),
            );
        }
    } else if key_mismatch(&after).is_some()
        && base_url_of(&before, "llm_base_url") != base_url_of(&after, "llm_base_url")
    {
        return Err(SettingsError::KeyNeedsReentry);
    }
    Ok(merged)
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
        (KEY_BASE_URL): f.llm.base_url,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Whether the user ever saved settings (secrets and git provider tokens, kept in the same
/// record, do not count).
pub fn saved(stored: Option<&Value>) -> bool {
    stored
        .and_then(Value::as_object)
        .is_some_and(|m| FIELDS.iter().any(|(k, _)| m.contains_key(*k)))
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
        } else if *key == "mcp_config" {
            out.insert((*key).into(), mask_mcp(&v));
        } else if *key == "secrets_store" {
            // Tokens are never shown; which providers have one is `provider_tokens_set`.
            out.insert((*key).into(), json!({"provider_tokens": {}}));
        } else {
            out.insert((*key).into(), v);
        }
    }
    out.insert(
        "provider_tokens_set".into(),
        crate::provider_tokens::public_view(effective),
    );
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

/// What `GET /api/settings` shows instead of a secret inside `mcp_config`.
pub const MASK: &str = "<hidden>";

/// `mcp_config` with every server's `api_key` and every environment value masked.
fn mask_mcp(config: &Value) -> Value {
    let mut out = config.clone();
    for_each_secret(&mut out, |_, _, v| *v = Value::String(MASK.into()));
    out
}

/// Calls `f(server identity, field, value)` for every secret of an `mcp_config`: the
/// `api_key` of SSE and streamable-HTTP servers (by url), the `env` values of stdio
/// servers (by name and variable).
fn for_each_secret(config: &mut Value, mut f: impl FnMut(&str, &str, &mut Value)) {
    for list in ["sse_servers", "shttp_servers"] {
        for server in config
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let url = server
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(key) = server.get_mut("api_key").filter(|k| k.is_string()) {
                f(&format!("{list}:{url}"), "api_key", key);
            }
        }
    }
    for server in config
        .get_mut("stdio_servers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let name = server
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(Value::Object(env)) = server.get_mut("env") {
            for (var, value) in env.iter_mut().filter(|(_, v)| v.is_string()) {
                f(&format!("stdio:{name}"), var, value);
            }
        }
    }
}

/// A posted `mcp_config` that still holds masked secrets gets the stored ones back.
fn unmask_mcp(posted: &mut Value, stored: Option<&Value>) {
    let mut known = std::collections::HashMap::new();
    if let Some(stored) = stored {
        let mut stored = stored.clone();
        for_each_secret(&mut stored, |server, field, v| {
            known.insert((server.to_string(), field.to_string()), v.clone());
        });
    }
    for_each_secret(posted, |server, field, v| {
        if v.as_str() == Some(MASK) {
            *v = known
                .get(&(server.to_string(), field.to_string()))
                .cloned()
                .unwrap_or(Value::Null);
        }
    });
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
        let mut value = value;
        if key == "mcp_config" {
            unmask_mcp(&mut value, out.get("mcp_config"));
        }
        out.insert(key, value);
    }
    Ok(Value::Object(out))
}

/// Where custom secrets live inside the stored settings (never in `FIELDS`, so neither
/// `GET /api/settings` shows them nor `POST /api/settings` can overwrite them).
const CUSTOM_SECRETS: &str = "custom_secrets";

/// A user's named secret: given to the agent's shell as an environment variable.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomSecret {
    pub name: String,
    pub value: String,
    pub description: String,
}

/// Why a secret was refused.
#[derive(Debug, Error)]
pub enum SecretError {
    #[error("a secret name must be a valid environment variable name (letters, digits and _, not starting with a digit; at most 100 characters)")]
    BadName,
    #[error("a secret value must be at most 64 KiB")]
    TooLarge,
    #[error("secret {0} already exists")]
    Exists(String),
    #[error("secret {0} not found")]
    NotFound(String),
}

/// Whether `name` can be an environment variable name.
fn valid_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 100
}

/// The custom secrets in stored settings, sorted by name.
pub fn custom_secrets(stored: Option<&Value>) -> Vec<CustomSecret> {
    let Some(Value::Object(map)) = stored.and_then(|s| s.get(CUSTOM_SECRETS)) else {
        return Vec::new();
    };
    let mut out: Vec<CustomSecret> = map
        .iter()
        .map(|(name, v)| CustomSecret {
            name: name.clone(),
            value: v
                .get("secret")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            description: v
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Runs `f` on the stored secrets map (created when missing).
fn with_secrets<R>(
    stored: &mut Map<String, Value>,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    let mut map = match stored.remove(CUSTOM_SECRETS) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let out = f(&mut map);
    stored.insert(CUSTOM_SECRETS.into(), Value::Object(map));
    out
}

fn as_object(stored: Option<Value>) -> Map<String, Value> {
    match stored {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Adds a secret to the stored settings.
pub fn add_secret(stored: Option<Value>, secret: CustomSecret) -> Result<Value, SecretError> {
    if !valid_secret_name(&secret.name) {
        return Err(SecretError::BadName);
    }
    if secret.value.len() > 64 * 1024 {
        return Err(SecretError::TooLarge);
    }
    let mut stored = as_object(stored);
    with_secrets(&mut stored, |map| {
        if map.contains_key(&secret.name) {
            return Err(SecretError::Exists(secret.name));
        }
        map.insert(
            secret.name,
            json!({"secret": secret.value, "description": secret.description}),
        );
        Ok(())
    })?;
    Ok(Value::Object(stored))
}

/// Renames a secret and/or changes its description; its value stays.
pub fn update_secret(
    stored: Option<Value>,
    old_name: &str,
    new_name: &str,
    description: Option<String>,
) -> Result<Value, SecretError> {
    if !valid_secret_name(new_name) {
        return Err(SecretError::BadName);
    }
    let mut stored = as_object(stored);
    with_secrets(&mut stored, |map| {
        if new_name != old_name && map.contains_key(new_name) {
            return Err(SecretError::Exists(new_name.into()));
        }
        let Some(mut entry) = map.remove(old_name) else {
            return Err(SecretError::NotFound(old_name.into()));
        };
        if let (Some(d), Value::Object(e)) = (description, &mut entry) {
            e.insert("description".into(), Value::String(d));
        }
        map.insert(new_name.into(), entry);
        Ok(())
    })?;
    Ok(Value::Object(stored))
}

/// Removes a secret.
pub fn delete_secret(stored: Option<Value>, name: &str) -> Result<Value, SecretError> {
    let mut stored = as_object(stored);
    with_secrets(&mut stored, |map| map.remove(name))
        .ok_or_else(|| SecretError::NotFound(name.into()))?;
    Ok(Value::Object(stored))
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn the_typed_view_reads_the_effective_settings_and_treats_empty_as_unset() {
        let config = Config::for_tests();
        let stored = json!({"llm_model": "openai/m", "llm_api_key": "", "max_iterations": 0, "max_budget_per_task": 2.5, "confirmation_mode": true, "language": 7});
        let s = UserSettings::from_map(&effective(&config, Some(&stored)));
        assert_eq!(s.llm_model.as_deref(), Some("openai/m"));
        assert_eq!(s.llm_api_key, None, "empty is unset");
        assert_eq!(s.max_iterations, None, "0 is unset");
        assert_eq!(s.max_budget_per_task, Some(2.5));
        assert_eq!(s.confirmation_mode, Some(true));
        assert_eq!(s.language, None, "a wrong type is unset");
    }

    #[test]
    fn mcp_secrets_are_masked_and_kept_when_the_masked_config_comes_back() {
        let mcp = json!({
            "sse_servers": [{"url": "https://a.example/sse", "api_key": "sk-sse"}, "https://plain.example"],
            "shttp_servers": [{"url": "https://b.example/mcp", "api_key": "sk-http"}],
            "stdio_servers": [{"name": "gh", "command": "npx", "args": [], "env": {"GITHUB_TOKEN": "ghp_x"}}],
        });
        let stored = merge(None, json!({"mcp_config": mcp})).unwrap();
        let view = public_view(stored.as_object().unwrap());
        let shown = view["mcp_config"].to_string();
        for secret in ["sk-sse", "sk-http", "ghp_x"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(
            view["mcp_config"]["sse_servers"][1],
            "https://plain.example"
        );
        // The MCP page posts what it was shown, plus a new server.
        let mut edited = view["mcp_config"].clone();
        edited["shttp_servers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"url": "https://c.example", "api_key": "new"}));
        let saved = merge(Some(stored), json!({"mcp_config": edited})).unwrap();
        assert_eq!(saved["mcp_config"]["sse_servers"][0]["api_key"], "sk-sse");
        assert_eq!(
            saved["mcp_config"]["shttp_servers"][0]["api_key"],
            "sk-http"
        );
        assert_eq!(saved["mcp_config"]["shttp_servers"][1]["api_key"], "new");
        assert_eq!(
            saved["mcp_config"]["stdio_servers"][0]["env"]["GITHUB_TOKEN"],
            "ghp_x"
        );
    }

    #[test]
    fn a_saved_key_only_goes_to_the_base_url_it_was_saved_with() {
        let config = Config::for_tests();
        let s = update(
            &config,
            None,
            json!({"llm_api_key": "k", "llm_base_url": "https://llm.example/v1"}),
        )
        .unwrap();
        assert!(key_mismatch(&effective(&config, Some(&s))).is_none());
        // A new base URL without the key is refused, with the key it is fine.
        let moved = json!({"llm_base_url": "http://attacker.example/v1"});
        assert!(matches!(
            update(&config, Some(s.clone()), moved.clone()),
            Err(SettingsError::KeyNeedsReentry)
        ));
        let mut with_key = moved;
        with_key["llm_api_key"] = json!("k2");
        assert!(update(&config, Some(s.clone()), with_key).is_ok());
        // Other changes (and an empty key, which keeps the stored one) are fine.
        let s2 = update(
            &config,
            Some(s.clone()),
            json!({"llm_model": "m", "llm_api_key": "", "llm_base_url": "https://llm.example/v1/"}),
        )
        .unwrap();
        assert!(key_mismatch(&effective(&config, Some(&s2))).is_none());
        // Stored settings that point the key elsewhere (say, written before binding) are
        // caught when the key would be used.
        let mut forged = s;
        forged["llm_base_url"] = json!("http://attacker.example/v1");
        assert!(key_mismatch(&effective(&config, Some(&forged)))
            .unwrap()
            .contains("attacker.example"));
        // Clients cannot set the binding themselves.
        let s3 = update(
            &config,
            Some(forged),
            json!({(KEY_BASE_URL): "http://attacker.example/v1"}),
        )
        .unwrap();
        assert_ne!(s3[KEY_BASE_URL], "http://attacker.example/v1");
    }

    fn secret(name: &str, value: &str) -> CustomSecret {
        CustomSecret {
            name: name.into(),
            value: value.into(),
            description: String::new(),
        }
    }

    #[test]
    fn secrets_are_added_renamed_and_deleted_without_touching_other_settings() {
        let stored = Some(json!({"llm_model": "m"}));
        let s = add_secret(stored, secret("GITHUB_TOKEN", "v1")).unwrap();
        assert!(matches!(
            add_secret(Some(s.clone()), secret("GITHUB_TOKEN", "v2")),
            Err(SecretError::Exists(_))
        ));
        let s = update_secret(Some(s), "GITHUB_TOKEN", "GH", Some("d".into())).unwrap();
        let list = custom_secrets(Some(&s));
        assert_eq!(list.len(), 1);
        assert_eq!(
            (
                list[0].name.as_str(),
                list[0].value.as_str(),
                list[0].description.as_str()
            ),
            ("GH", "v1", "d")
        );
        assert_eq!(s["llm_model"], "m");
        let s = delete_secret(Some(s), "GH").unwrap();
        assert!(custom_secrets(Some(&s)).is_empty());
        assert!(matches!(
            delete_secret(Some(s), "GH"),
            Err(SecretError::NotFound(_))
        ));
    }

    #[test]
    fn secret_names_must_be_environment_variable_names() {
        for bad in ["", "1A", "A-B", "A B", "A=B", "Ä", &"A".repeat(101)] {
            assert!(
                matches!(
                    add_secret(None, secret(bad, "v")),
                    Err(SecretError::BadName)
                ),
                "{bad}"
            );
        }
        assert!(add_secret(None, secret("_OK_1", "v")).is_ok());
    }

    #[test]
    fn posted_settings_cannot_overwrite_secrets_and_the_public_view_hides_them() {
        let s = add_secret(None, secret("TOKEN", "hunter2")).unwrap();
        let merged = merge(Some(s), json!({"custom_secrets": {}, "llm_model": "x"})).unwrap();
        assert_eq!(custom_secrets(Some(&merged)).len(), 1);
        let view = public_view(merged.as_object().unwrap()).to_string();
        assert!(
            !view.contains("hunter2") && !view.contains("TOKEN"),
            "{view}"
        );
    }
}
