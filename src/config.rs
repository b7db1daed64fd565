//! One validated [`Config`] from defaults < `config.toml` < environment < CLI flags.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid environment variable {var}={value:?}: expected {expected}")]
    Env {
        var: String,
        value: String,
        expected: &'static str,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `[core]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CoreConfig {
    pub default_agent: String,
    pub runtime: String,
    pub file_store: String,
    pub file_store_path: String,
    /// `postgres://…`: keep everything in PostgreSQL instead of SQLite under
    /// `file_store_path` (`DATABASE_URL`, `--database-url`).
    pub database_url: Option<String>,
    pub max_iterations: u64,
    pub max_budget_per_task: Option<f64>,
    pub max_concurrent_conversations: usize,
    pub conversation_max_age_seconds: u64,
    pub workspace_base: Option<String>,
    pub workspace_mount_path_in_sandbox: String,
    pub enable_browser: bool,
    pub enable_default_condenser: bool,
    pub init_git_in_empty_workspace: bool,
    pub file_uploads_max_file_size_mb: u64,
    pub search_api_key: Option<String>,
    pub git_user_name: String,
    pub git_user_email: String,
    /// The user's own knowledge microagents (`USER_MICROAGENTS_DIR`).
    pub user_microagents_dir: String,
    pub debug: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_agent: "CodeActAgent".into(),
            runtime: "local".into(),
            file_store: "local".into(),
            file_store_path: "~/.openhands".into(),
            database_url: None,
            max_iterations: 500,
            max_budget_per_task: None,
            max_concurrent_conversations: 64,
            conversation_max_age_seconds: 864_000,
            workspace_base: None,
            workspace_mount_path_in_sandbox: "/workspace".into(),
            enable_browser: true,
            enable_default_condenser: true,
            init_git_in_empty_workspace: false,
            file_uploads_max_file_size_mb: 0,
            search_api_key: None,
            git_user_name: "openhands".into(),
            git_user_email: "openhands@all-hands.dev".into(),
            user_microagents_dir: "~/.openhands/microagents".into(),
            debug: false,
        }
    }
}

/// `[llm]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub api_version: Option<String>,
    pub num_retries: u32,
    pub retry_multiplier: f64,
    pub retry_min_wait: f64,
    pub retry_max_wait: f64,
    pub timeout: Option<f64>,
    pub temperature: f64,
    pub top_p: f64,
    pub max_message_chars: usize,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub drop_params: bool,
    pub modify_params: bool,
    pub caching_prompt: bool,
    pub disable_vision: Option<bool>,
    pub native_tool_calling: Option<bool>,
    pub reasoning_effort: Option<String>,
    pub custom_llm_provider: Option<String>,
    pub ollama_base_url: Option<String>,
    /// Stream completions from OpenAI-compatible providers.
    pub stream: bool,
    /// Named groups (`[llm.draft]`), kept for agents that select them.
    #[serde(flatten)]
    pub groups: BTreeMap<String, toml::Value>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            model: None,
            api_key: None,
            base_url: None,
            api_version: None,
            num_retries: 5,
            retry_multiplier: 8.0,
            retry_min_wait: 8.0,
            retry_max_wait: 64.0,
            timeout: None,
            temperature: 0.0,
            top_p: 1.0,
            max_message_chars: 30_000,
            max_input_tokens: None,
            max_output_tokens: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            drop_params: true,
            modify_params: true,
            caching_prompt: true,
            disable_vision: None,
            native_tool_calling: None,
            reasoning_effort: None,
            custom_llm_provider: None,
            ollama_base_url: None,
            stream: false,
            groups: BTreeMap::new(),
        }
    }
}

/// `[agent]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    pub enable_browsing: bool,
    pub enable_editor: bool,
    pub enable_llm_editor: bool,
    pub enable_jupyter: bool,
    pub enable_cmd: bool,
    pub enable_think: bool,
    pub enable_finish: bool,
    pub enable_plan_mode: bool,
    pub enable_mcp: bool,
    pub enable_condensation_request: bool,
    pub enable_history_truncation: bool,
    pub enable_prompt_extensions: bool,
    pub disabled_microagents: Vec<String>,
    pub system_prompt_filename: String,
    pub llm_config: Option<String>,
    /// Per-agent sections (`[agent.CodeActAgent]`).
    #[serde(flatten)]
    pub agents: BTreeMap<String, toml::Value>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            enable_browsing: true,
            enable_editor: true,
            enable_llm_editor: false,
            enable_jupyter: true,
            enable_cmd: true,
            enable_think: true,
            enable_finish: true,
            enable_plan_mode: true,
            enable_mcp: true,
            enable_condensation_request: false,
            enable_history_truncation: true,
            enable_prompt_extensions: true,
            disabled_microagents: Vec::new(),
            system_prompt_filename: "system_prompt.j2".into(),
            llm_config: None,
            agents: BTreeMap::new(),
        }
    }
}

/// `[sandbox]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// Default hard timeout of a command, in seconds.
    pub timeout: u64,
    /// Seconds an idle conversation with no client stays open.
    pub close_delay: u64,
    /// Seconds without new output after which a command returns, still running.
    pub no_change_timeout: u64,
    /// Longest wait, in seconds, for one step of the interactive browser (a page load).
    pub browser_action_timeout: u64,
    /// Seconds after which an unused browser is closed (0: only with its conversation).
    pub browser_idle_timeout: u64,
    pub keep_runtime_alive: bool,
    pub pause_closed_runtimes: bool,
    pub base_container_image: Option<String>,
    pub runtime_container_image: Option<String>,
    pub user_id: Option<u32>,
    pub use_host_network: bool,
    /// `host:container[:mode]`, comma-separated; a mount on `/workspace` is the workspace.
    pub volumes: Option<String>,
    pub vscode_port: Option<u16>,
    pub runtime_startup_env_vars: BTreeMap<String, String>,
    pub api_key: Option<String>,
    pub remote_runtime_api_url: Option<String>,
    pub local_runtime_url: String,
    pub enable_gpu: bool,
    pub enable_auto_lint: bool,
    pub initialize_plugins: bool,
    pub platform: Option<String>,
    /// What the agent's processes may touch (ours; `SANDBOX_MODE`).
    pub mode: crate::runtime::sandbox::SandboxMode,
    /// Whether the agent's processes reach the network (ours; `SANDBOX_NETWORK`); off
    /// leaves only loopback services the conversation started itself.
    pub network: bool,
    /// Refuse to start when the kernel cannot enforce `mode`/`network` completely (ours;
    /// `SANDBOX_REQUIRE`); otherwise the server runs with what it has and says so.
    pub require: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            timeout: 120,
            close_delay: 3600,
            no_change_timeout: 30,
            browser_action_timeout: 30,
            browser_idle_timeout: 600,
            keep_runtime_alive: false,
            pause_closed_runtimes: true,
            base_container_image: None,
            runtime_container_image: None,
            user_id: None,
            use_host_network: false,
            volumes: None,
            vscode_port: None,
            runtime_startup_env_vars: BTreeMap::new(),
            api_key: None,
            remote_runtime_api_url: None,
            local_runtime_url: "http://localhost".into(),
            enable_gpu: false,
            enable_auto_lint: false,
            initialize_plugins: true,
            platform: None,
            mode: crate::runtime::sandbox::SandboxMode::default(),
            network: true,
            require: false,
        }
    }
}

/// `[security]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    pub confirmation_mode: bool,
    pub security_analyzer: Option<String>,
    pub enable_security_analyzer: bool,
}

/// `[limits]` (ours): what one client or the whole server may take. Environment:
/// `LIMITS_<KEY>` (for example `LIMITS_MAX_CONVERSATIONS`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Socket.IO (Engine.IO) sessions open at once, in all.
    pub max_engineio_sessions: usize,
    /// Socket.IO sessions open at once from one client address.
    pub max_engineio_sessions_per_client: usize,
    /// Largest packet of a socket that has not shown the session key yet, in bytes.
    pub unauthenticated_payload_bytes: usize,
    /// Seconds a socket may stay without showing the session key (when one is set).
    pub auth_deadline_seconds: u64,
    /// Seconds a client has to send a request's headers (also closes idle keep-alive
    /// connections).
    pub header_read_timeout_seconds: u64,
    /// TCP connections served at once.
    pub max_connections: usize,
    /// Largest `GET …/events` or `…/trajectory` answer, in bytes (the rest is paged).
    pub max_response_bytes: usize,
    /// Conversations the server keeps; creating one more is refused.
    pub max_conversations: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_engineio_sessions: 4096,
            max_engineio_sessions_per_client: 512,
            unauthenticated_payload_bytes: 64 * 1024,
            auth_deadline_seconds: 20,
            header_read_timeout_seconds: 30,
            max_connections: 8192,
            max_response_bytes: 8 * 1024 * 1024,
            max_conversations: 10_000,
        }
    }
}

/// The sections of `config.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    pub core: CoreConfig,
    pub llm: LlmConfig,
    pub agent: AgentConfig,
    pub sandbox: SandboxConfig,
    pub security: SecurityConfig,
    pub limits: LimitsConfig,
    /// `[mcp]`: MCP servers whose tools the agent gets.
    pub mcp: crate::mcp::McpConfig,
    pub condenser: CondenserConfig,
}

/// `[condenser]`: when the history is summarised before the context overflows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CondenserConfig {
    /// Summarise the older half once the history holds more than this many events
    /// (`CONDENSER_MAX_SIZE`; the settings' `condenser_max_size` wins). Without it, only
    /// an overflowing context or a `condensation_request` condenses.
    pub max_size: Option<u64>,
}

/// Everything the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub session_api_key: Option<String>,
    /// Browser origins trusted besides the server's own (CORS and the Origin check);
    /// `*` means any.
    pub cors_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback names and the bound
    /// address (against DNS rebinding); `*` means any (`ALLOWED_HOSTS`).
    pub allowed_hosts: Vec<String>,
    /// The session key was generated at start (a network bind without a configured key).
    pub generated_key: bool,
    pub file: FileConfig,
    /// Warnings collected while loading (unknown keys, unsupported keys that are set),
    /// logged at start.
    pub warnings: Vec<String>,
    /// The configuration file that was read (absolute), if any: hidden from the agent.
    pub config_path: Option<PathBuf>,
}

/// Command-line overrides (the highest precedence).
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub config: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub file_store_path: Option<String>,
    /// The PostgreSQL URL (highest precedence over `DATABASE_URL` and the file).
    pub database_url: Option<String>,
    pub workspace_base: Option<String>,
    /// Serve a network address without a session key (the deployment authenticates).
    pub no_auth: bool,
}

/// Whether a bind address or host name only reaches this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.to_ascii_lowercase().ends_with(".localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A fresh random session key (two v4 UUIDs: 244 random bits, URL-safe).
fn random_key() -> String {
    use base64::Engine as _;
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How an environment variable's text becomes a TOML value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    /// A TOML inline value (list or table), e.g. `["a","b"]`.
    Toml,
}

/// The keys of one section and how their environment values parse.
type KeyKinds = fn() -> Vec<(String, Kind)>;

/// The sections environment variables set: (section, variable prefix, its keys). `[core]`
/// keys are upper-cased (`MAX_ITERATIONS`), the others also prefixed (`LLM_MODEL`).
const SECTIONS: &[(&str, &str, KeyKinds)] = &[
    ("core", "", key_kinds::<CoreConfig>),
    ("llm", "LLM_", key_kinds::<LlmConfig>),
    ("agent", "AGENT_", key_kinds::<AgentConfig>),
    ("sandbox", "SANDBOX_", key_kinds::<SandboxConfig>),
    ("security", "SECURITY_", key_kinds::<SecurityConfig>),
    ("limits", "LIMITS_", key_kinds::<LimitsConfig>),
    ("condenser", "CONDENSER_", key_kinds::<CondenserConfig>),
];

/// The keys of a section (its fields as serde names them, from its default) with their
/// kinds: the kind of the default value or, for an optional field that defaults to
/// nothing, the first kind the field accepts.
fn key_kinds<T: Default + Serialize + DeserializeOwned>() -> Vec<(String, Kind)> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(T::default()) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .map(|(key, default)| {
            let kind = match default {
                serde_json::Value::Bool(_) => Kind::Bool,
                serde_json::Value::Number(n) if n.is_f64() => Kind::Float,
                serde_json::Value::Number(_) => Kind::Int,
                serde_json::Value::String(_) => Kind::Str,
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => Kind::Toml,
                serde_json::Value::Null => accepted_kind::<T>(&key),
            };
            (key, kind)
        })
        .collect()
}

/// The kind the field `key` of `T` accepts, found by offering it a sample of each kind
/// (a number before an integer, which a number field also takes).
fn accepted_kind<T: DeserializeOwned>(key: &str) -> Kind {
    let samples = [
        (Kind::Float, toml::Value::Float(0.5)),
        (Kind::Int, toml::Value::Integer(1)),
        (Kind::Bool, toml::Value::Boolean(true)),
        (Kind::Str, toml::Value::String("x".into())),
    ];
    samples
        .into_iter()
        .find(|(_, sample)| {
            let mut table = toml::Table::new();
            table.insert(key.to_string(), sample.clone());
            toml::Value::Table(table).try_into::<T>().is_ok()
        })
        .map_or(Kind::Toml, |(kind, _)| kind)
}

/// Upstream keys this server accepts, so that upstream configuration files load, but does
/// not act on. Each one set to anything but its default is reported at start.
const UNSUPPORTED: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "runtime",
            "file_store",
            "conversation_max_age_seconds",
            "init_git_in_empty_workspace",
            "file_uploads_max_file_size_mb",
        ],
    ),
    (
        "llm",
        &[
            "api_version",
            "max_input_tokens",
            "drop_params",
            "modify_params",
            "caching_prompt",
            "disable_vision",
            "native_tool_calling",
            "reasoning_effort",
            "custom_llm_provider",
            "ollama_base_url",
        ],
    ),
    (
        "agent",
        &[
            "enable_editor",
            "enable_llm_editor",
            "enable_cmd",
            "enable_think",
            "enable_finish",
            "enable_plan_mode",
            "enable_mcp",
            "enable_condensation_request",
            "enable_history_truncation",
            "enable_prompt_extensions",
            "disabled_microagents",
            "system_prompt_filename",
            "llm_config",
        ],
    ),
    (
        "sandbox",
        &[
            "keep_runtime_alive",
            "pause_closed_runtimes",
            "user_id",
            "use_host_network",
            "vscode_port",
            "api_key",
            "remote_runtime_api_url",
            "local_runtime_url",
            "enable_gpu",
            "enable_auto_lint",
            "initialize_plugins",
            "platform",
        ],
    ),
    ("security", &["enable_security_analyzer"]),
];

/// A warning for each [`UNSUPPORTED`] key that `file` sets to something other than its
/// default (values are not shown: some are keys).
fn unsupported_warnings(file: &FileConfig) -> Vec<String> {
    let (Ok(set), Ok(default)) = (
        serde_json::to_value(file),
        serde_json::to_value(FileConfig::default()),
    ) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for (section, keys) in UNSUPPORTED {
        let prefix = SECTIONS
            .iter()
            .find(|(name, ..)| name == section)
            .map_or("", |(_, prefix, _)| prefix);
        for key in keys.iter() {
            if set[section][key] != default[section][key] {
                let var = format!("{prefix}{}", key.to_ascii_uppercase());
                warnings.push(format!(
                    "`{section}.{key}` ({var}) is set but not supported by this server; ignored"
                ));
            }
        }
    }
    warnings
}

fn env_value(var: &str, raw: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    let bad = |expected| ConfigError::Env {
        var: var.to_string(),
        value: raw.to_string(),
        expected,
    };
    Ok(match kind {
        Kind::Str => toml::Value::String(raw.to_string()),
        Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Kind::Float => toml::Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(bad("true/false or 1/0")),
        },
        Kind::Toml => {
            let doc: toml::Table = toml::from_str(&format!("v = {raw}"))
                .map_err(|_| bad("a TOML list or inline table"))?;
            doc.get("v").cloned().ok_or_else(|| bad("a value"))?
        }
    })
}

fn section_mut<'a>(
    table: &'a mut toml::Table,
    name: &str,
) -> Result<&'a mut toml::Table, ConfigError> {
    let entry = table
        .entry(name.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    entry
        .as_table_mut()
        .ok_or_else(|| ConfigError::Invalid(format!("[{name}] must be a table")))
}

/// Overlays environment variables (`LLM_MODEL`, `SANDBOX_TIMEOUT`, `MAX_ITERATIONS`, …).
fn apply_env(
    table: &mut toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (section, prefix, keys) in SECTIONS {
        for (key, kind) in keys() {
            let var = format!("{prefix}{}", key.to_ascii_uppercase());
            let Some(raw) = env(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let value = match env_value(&var, &raw, kind) {
                Ok(v) => v,
                // A flag such as DEBUG=vite:* belongs to another program: ignore it.
                Err(e) if matches!(kind, Kind::Bool) => {
                    warnings.push(format!("{e}; ignored"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            section_mut(table, section)?.insert(key, value);
        }
    }
    if let Some(raw) = env("OH_MAX_ITERATIONS").filter(|v| !v.is_empty()) {
        let value = env_value("OH_MAX_ITERATIONS", &raw, Kind::Int)?;
        section_mut(table, "core")?.insert("max_iterations".into(), value);
    }
    Ok(())
}

/// Parses the file text, collecting unknown keys as warnings.
fn parse_file(
    path: &str,
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<toml::Table, ConfigError> {
    let parse_err = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_string(),
        message: describe_toml_error(text, &e),
    };
    // Type-check the file on its own so errors point at its lines.
    let de = toml::Deserializer::parse(text).map_err(parse_err)?;
    let mut unknown = Vec::new();
    let parsed: FileConfig =
        serde_ignored::deserialize(de, |p| unknown.push(p.to_string())).map_err(parse_err)?;
    for key in unknown {
        warnings.push(format!("{path}: unknown key `{key}` ignored"));
    }
    for (name, v) in parsed.llm.groups.iter() {
        if !v.is_table() {
            warnings.push(format!("{path}: unknown key `llm.{name}` ignored"));
        }
    }
    for (name, v) in parsed.agent.agents.iter() {
        if !v.is_table() {
            warnings.push(format!("{path}: unknown key `agent.{name}` ignored"));
        }
    }
    toml::from_str(text).map_err(parse_err)
}

/// Formats a TOML error as `line L, key `k`: message`.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return message;
    };
    let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let key = line.split('=').next().unwrap_or("").trim();
    if line.contains('=') && !key.is_empty() {
        format!("line {line_no}, key `{key}`: {message} (in `{line}`)")
    } else {
        format!("line {line_no}: {message} (in `{line}`)")
    }
}

impl Config {
    /// Loads the configuration from the process environment and `cli`.
    pub fn load(cli: &CliOverrides) -> Result<Config, ConfigError> {
        Self::load_with(cli, &|k| std::env::var(k).ok())
    }

    /// The defaults (and this directory's `config.toml`), for unit tests.
    #[cfg(test)]
    pub fn for_tests() -> Config {
        Self::load_with(&CliOverrides::default(), &|_| None).expect("default config")
    }

    /// Loads the configuration with an explicit environment lookup (for tests).
    pub fn load_with(
        cli: &CliOverrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let (path, required) = match &cli.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("config.toml"), false),
        };
        let mut config_path = None;
        let mut table = match std::fs::read_to_string(&path) {
            Ok(text) => {
                config_path = std::fs::canonicalize(&path).ok();
                parse_file(&path.display().to_string(), &text, &mut warnings)?
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source: e,
                })
            }
        };
        apply_env(&mut table, env, &mut warnings)?;
        if let Some(p) = &cli.file_store_path {
            section_mut(&mut table, "core")?.insert("file_store_path".into(), p.clone().into());
        }
        if let Some(p) = &cli.workspace_base {
            section_mut(&mut table, "core")?.insert("workspace_base".into(), p.clone().into());
        }
        if let Some(url) = &cli.database_url {
            section_mut(&mut table, "core")?.insert("database_url".into(), url.clone().into());
        }
        let file: FileConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        warnings.extend(unsupported_warnings(&file));

        let host = cli
            .host
            .clone()
            .or_else(|| env("BACKEND_HOST").filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = match cli.port {
            Some(p) => p,
            None => match env("BACKEND_PORT")
                .or_else(|| env("port"))
                .filter(|v| !v.is_empty())
            {
                Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Env {
                    var: "BACKEND_PORT".into(),
                    value: raw.clone(),
                    expected: "a port number",
                })?,
                None => 3000,
            },
        };
        let cors_origins = env("CORS_ALLOWED_ORIGINS")
            .or_else(|| env("PERMITTED_CORS_ORIGINS"))
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let list = |name: &str| -> Vec<String> {
            env(name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let allowed_hosts = list("ALLOWED_HOSTS");
        let mut session_api_key = env("SESSION_API_KEY").filter(|v| !v.is_empty());
        // Anyone on the network could run commands: a network bind needs a key, made up
        // here unless the deployment says it authenticates users itself.
        let no_auth =
            cli.no_auth || env("OPENHANDS_NO_AUTH").is_some_and(|v| v == "1" || v == "true");
        let generated_key = session_api_key.is_none() && !no_auth && !is_loopback_host(&host);
        if generated_key {
            session_api_key = Some(random_key());
        }
        let config = Config {
            host,
            port,
            session_api_key,
            cors_origins,
            allowed_hosts,
            generated_key,
            file,
            warnings,
            config_path,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = self.database_url() {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid(
                    "core.database_url (DATABASE_URL) must be a postgres:// URL".into(),
                ));
            }
        }
        if self.file.core.max_concurrent_conversations == 0 {
            return Err(ConfigError::Invalid(
                "core.max_concurrent_conversations must be at least 1".into(),
            ));
        }
        if let Some(name) = &self.file.security.security_analyzer {
            crate::security::Analyzer::parse(name).map_err(|why| {
                ConfigError::Invalid(format!("security.security_analyzer: {why}"))
            })?;
        }
        if self.file.sandbox.no_change_timeout == 0 {
            return Err(ConfigError::Invalid(
                "sandbox.no_change_timeout must be at least 1 second".into(),
            ));
        }
        if self.file.sandbox.timeout == 0 {
            return Err(ConfigError::Invalid(
                "sandbox.timeout must be at least 1 second".into(),
            ));
        }
        self.file
            .mcp
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(v) = &self.file.sandbox.volumes {
            for mount in v.split(',').filter(|m| !m.trim().is_empty()) {
                if mount.split(':').count() < 2 {
                    return Err(ConfigError::Invalid(format!(
                        "sandbox.volumes entry {mount:?} is not host:container[:mode]"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The PostgreSQL URL, if events and settings are kept there (an empty value is unset).
    pub fn database_url(&self) -> Option<&str> {
        self.file
            .core
            .database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
    }

    /// The directory holding the database (`file_store_path`, `~` expanded).
    pub fn file_store_path(&self) -> PathBuf {
        expand_home(&self.file.core.file_store_path)
    }

    /// The shared workspace, if the user pointed one out (`WORKSPACE_BASE` or a
    /// `SANDBOX_VOLUMES` mount on the sandbox workspace path).
    pub fn workspace_base(&self) -> Option<PathBuf> {
        if let Some(volumes) = &self.file.sandbox.volumes {
            for mount in volumes.split(',') {
                let parts: Vec<&str> = mount.trim().split(':').collect();
                if parts.len() >= 2 && parts[1] == self.file.core.workspace_mount_path_in_sandbox {
                    return Some(expand_home(parts[0]));
                }
            }
        }
        self.file.core.workspace_base.as_deref().map(expand_home)
    }

    /// The workspace of conversation `id`: the shared one if configured, else its own
    /// directory under the file store.
    pub fn workspace_for(&self, id: &str) -> PathBuf {
        self.workspace_base()
            .unwrap_or_else(|| self.file_store_path().join("workspaces").join(id))
    }

    /// Whether conversations share one workspace (so deleting one keeps the files).
    pub fn shared_workspace(&self) -> bool {
        self.workspace_base().is_some()
    }

    /// Whether an LLM is configured well enough to run the agent.
    pub fn llm_configured(&self) -> bool {
        self.file
            .llm
            .model
            .as_deref()
            .is_some_and(|m| !m.is_empty())
    }
}

impl Config {
    /// The folder of the user's knowledge microagents, if one is set.
    pub fn user_microagents_dir(&self) -> Option<PathBuf> {
        let dir = self.file.core.user_microagents_dir.trim();
        (!dir.is_empty()).then(|| expand_home(dir))
    }
}

fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Path::new(&home).join(rest);
        }
    }
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    fn load(
        text: Option<&str>,
        env: &[(&str, &str)],
        cli: CliOverrides,
    ) -> Result<Config, ConfigError> {
        let mut cli = cli;
        let file = tempfile::NamedTempFile::new().unwrap();
        if let Some(t) = text {
            write!(file.as_file(), "{t}").unwrap();
            cli.config = Some(file.path().to_path_buf());
        } else {
            cli.config = None;
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(&cli, &|k| env.get(k).cloned())
    }

    #[test]
    fn a_network_bind_without_a_key_gets_a_random_one_unless_told_otherwise() {
        let local = load(None, &[], CliOverrides::default()).unwrap();
        assert_eq!(
            (local.session_api_key.as_deref(), local.generated_key),
            (None, false)
        );
        let lan = CliOverrides {
            host: Some("0.0.0.0".into()),
            ..Default::default()
        };
        let a = load(None, &[], lan.clone()).unwrap();
        let b = load(None, &[], lan.clone()).unwrap();
        let key = a.session_api_key.clone().unwrap();
        assert!(a.generated_key && key.len() >= 40, "{key}");
        assert_ne!(a.session_api_key, b.session_api_key);
        let given = load(None, &[("SESSION_API_KEY", "mine")], lan.clone()).unwrap();
        assert_eq!(
            (given.session_api_key.as_deref(), given.generated_key),
            (Some("mine"), false)
        );
        let open = load(None, &[("OPENHANDS_NO_AUTH", "1")], lan).unwrap();
        assert_eq!(open.session_api_key, None);
        for host in ["localhost", "127.0.0.2", "::1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["0.0.0.0", "192.168.1.5", "::", "example.com"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn precedence_is_defaults_then_file_then_env_then_cli() {
        let text = "[sandbox]\ntimeout = 30\nclose_delay = 10\n[core]\nmax_iterations = 7\n";
        let c = load(Some(text), &[], CliOverrides::default()).unwrap();
        assert_eq!(c.file.sandbox.timeout, 30);
        assert_eq!(c.file.sandbox.close_delay, 10);
        assert_eq!(c.file.core.max_iterations, 7);
        assert_eq!(c.port, 3000);
        let c = load(
            Some(text),
            &[
                ("SANDBOX_TIMEOUT", "45"),
                ("MAX_ITERATIONS", "9"),
                ("BACKEND_PORT", "4000"),
            ],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(c.file.sandbox.timeout, 45);
        assert_eq!(c.file.sandbox.close_delay, 10);
        assert_eq!(c.file.core.max_iterations, 9);
        assert_eq!(c.port, 4000);
        let cli = CliOverrides {
            port: Some(5000),
            file_store_path: Some("/tmp/x".into()),
            ..Default::default()
        };
        let c = load(
            Some(text),
            &[("BACKEND_PORT", "4000"), ("FILE_STORE_PATH", "/tmp/y")],
            cli,
        )
        .unwrap();
        assert_eq!(c.port, 5000);
        assert_eq!(c.file_store_path(), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn database_url_layers_file_env_cli_and_refuses_other_schemes() {
        let file = "[core]\ndatabase_url = \"postgres://file/db\"\n";
        let c = load(Some(file), &[], CliOverrides::default()).unwrap();
        assert_eq!(c.database_url(), Some("postgres://file/db"));
        let env = [("DATABASE_URL", "postgresql://env/db")];
        let c = load(Some(file), &env, CliOverrides::default()).unwrap();
        assert_eq!(c.database_url(), Some("postgresql://env/db"));
        let cli = CliOverrides {
            database_url: Some("postgres://cli/db".into()),
            ..Default::default()
        };
        assert_eq!(
            load(Some(file), &env, cli).unwrap().database_url(),
            Some("postgres://cli/db")
        );
        assert_eq!(
            load(None, &[], CliOverrides::default())
                .unwrap()
                .database_url(),
            None,
            "SQLite stays the default"
        );
        let err = load(
            None,
            &[("DATABASE_URL", "mysql://x/db")],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("postgres://"), "{err}");
    }

    #[test]
    fn llm_env_and_bool_forms() {
        let c = load(
            None,
            &[
                ("LLM_MODEL", "openai/gpt-4o"),
                ("LLM_API_KEY", "12345"),
                ("SECURITY_CONFIRMATION_MODE", "1"),
            ],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(c.file.llm.model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(c.file.llm.api_key.as_deref(), Some("12345"));
        assert!(c.file.security.confirmation_mode);
    }

    #[test]
    fn unknown_keys_warn_and_named_llm_groups_are_kept() {
        let c = load(
            Some("[core]\nbogus = 1\n[llm]\nmodel = \"x\"\n[llm.draft]\nmodel = \"y\"\n[nonsense]\na = 1\n"),
            &[],
            CliOverrides::default(),
        )
        .unwrap();
        let w = c.warnings.join("\n");
        assert!(w.contains("core.bogus"), "{w}");
        assert!(w.contains("nonsense"), "{w}");
        assert!(!w.contains("draft"), "{w}");
        assert!(c.file.llm.groups.contains_key("draft"));
    }

    #[test]
    fn a_broken_file_names_the_file_the_line_and_the_key() {
        let err = load(
            Some("[core]\ndebug = true\nmax_iterations = \"lots\"\n"),
            &[],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("max_iterations"), "{err}");
        assert!(err.contains(".tmp"), "{err}");
        let err = load(Some("[core\nx"), &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn a_foreign_debug_flag_only_warns() {
        let c = load(None, &[("DEBUG", "vite:*")], CliOverrides::default()).unwrap();
        assert!(!c.file.core.debug);
        assert!(c.warnings.join(" ").contains("DEBUG"));
    }

    #[test]
    fn bad_env_values_are_named() {
        let err = load(
            None,
            &[("SANDBOX_TIMEOUT", "soon")],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SANDBOX_TIMEOUT"), "{err}");
    }

    #[test]
    fn workspace_from_sandbox_volumes() {
        let c = load(
            None,
            &[("SANDBOX_VOLUMES", "/srv/proj:/workspace:rw")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(c.workspace_base(), Some(PathBuf::from("/srv/proj")));
    }

    #[test]
    fn environment_keys_are_the_fields_with_their_kinds() {
        let kind = |keys: Vec<(String, Kind)>, key: &str| {
            keys.into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, kind)| kind)
        };
        assert_eq!(key_kinds::<CoreConfig>().len(), 20);
        assert_eq!(key_kinds::<LlmConfig>().len(), 25);
        assert_eq!(key_kinds::<SandboxConfig>().len(), 24);
        for (keys, key, expected) in [
            (
                key_kinds::<CoreConfig>(),
                "max_budget_per_task",
                Kind::Float,
            ),
            (key_kinds::<CoreConfig>(), "workspace_base", Kind::Str),
            (key_kinds::<CoreConfig>(), "database_url", Kind::Str),
            (key_kinds::<CoreConfig>(), "debug", Kind::Bool),
            (key_kinds::<LlmConfig>(), "model", Kind::Str),
            (key_kinds::<LlmConfig>(), "timeout", Kind::Float),
            (key_kinds::<LlmConfig>(), "retry_multiplier", Kind::Float),
            (key_kinds::<LlmConfig>(), "max_output_tokens", Kind::Int),
            (key_kinds::<LlmConfig>(), "disable_vision", Kind::Bool),
            (
                key_kinds::<AgentConfig>(),
                "disabled_microagents",
                Kind::Toml,
            ),
            (key_kinds::<SandboxConfig>(), "user_id", Kind::Int),
            (
                key_kinds::<SandboxConfig>(),
                "runtime_startup_env_vars",
                Kind::Toml,
            ),
            (key_kinds::<LimitsConfig>(), "max_conversations", Kind::Int),
        ] {
            assert_eq!(kind(keys, key), Some(expected), "{key}");
        }
        // Named groups and per-agent sections are not keys.
        assert_eq!(kind(key_kinds::<LlmConfig>(), "groups"), None);
        assert_eq!(kind(key_kinds::<AgentConfig>(), "agents"), None);

        let c = load(
            None,
            &[
                ("LLM_TIMEOUT", "30"),
                ("SANDBOX_USER_ID", "1000"),
                ("AGENT_DISABLED_MICROAGENTS", r#"["a", "b"]"#),
                ("SANDBOX_RUNTIME_STARTUP_ENV_VARS", r#"{ A = "1" }"#),
                ("MAX_BUDGET_PER_TASK", "2.5"),
            ],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(c.file.llm.timeout, Some(30.0));
        assert_eq!(c.file.sandbox.user_id, Some(1000));
        assert_eq!(c.file.agent.disabled_microagents, ["a", "b"]);
        assert_eq!(c.file.sandbox.runtime_startup_env_vars["A"], "1");
        assert_eq!(c.file.core.max_budget_per_task, Some(2.5));
    }

    #[test]
    fn unsupported_keys_set_to_other_values_are_reported() {
        // This repository's config.toml (read from the working directory) and the
        // defaults report nothing.
        let c = load(None, &[], CliOverrides::default()).unwrap();
        assert_eq!(c.warnings, Vec::<String>::new());

        let text = "[core]\nruntime = \"local\"\n[agent]\nenable_browsing = true\nenable_llm_editor = true\n[sandbox]\nuse_host_network = true\ntimeout = 60\n[llm]\nmodel = \"m\"\n";
        let c = load(
            Some(text),
            &[
                ("SANDBOX_KEEP_RUNTIME_ALIVE", "1"),
                ("LLM_REASONING_EFFORT", "high"),
                ("SANDBOX_API_KEY", "secret-value"),
            ],
            CliOverrides::default(),
        )
        .unwrap();
        let mut reported: Vec<&str> = c
            .warnings
            .iter()
            .filter_map(|w| w.split('`').nth(1))
            .collect();
        reported.sort();
        assert_eq!(
            reported,
            [
                "agent.enable_llm_editor",
                "llm.reasoning_effort",
                "sandbox.api_key",
                "sandbox.keep_runtime_alive",
                "sandbox.use_host_network",
            ]
        );
        let w = c.warnings.join("\n");
        assert!(w.contains("(SANDBOX_USE_HOST_NETWORK)"), "{w}");
        assert!(w.contains("not supported by this server"), "{w}");
        assert!(!w.contains("secret-value"), "{w}");
        // Still accepted: the values load.
        assert!(c.file.sandbox.use_host_network && c.file.agent.enable_llm_editor);
    }

    #[test]
    fn every_unsupported_key_is_a_key() {
        for (section, keys) in UNSUPPORTED {
            let (_, _, all) = SECTIONS.iter().find(|(name, ..)| name == section).unwrap();
            let all: Vec<String> = all().into_iter().map(|(k, _)| k).collect();
            for key in keys.iter() {
                assert!(all.iter().any(|k| k == key), "{section}.{key}");
            }
        }
    }
}
