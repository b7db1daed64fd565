//! What this build is: its version and the features it has, for `--version` and
//! `GET /api/options/config`.

/// The server's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What this build can do, by name (stable names: clients and operators may test for them).
pub const FEATURES: &[&str] = &[
    "socketio",
    "raw_ws",
    "rest_api",
    "sqlite_store",
    "local_runtime",
    "llm_openai_compatible",
    "llm_anthropic",
    "llm_streaming",
    "browse",
    "repositories",
    "microagents",
    "condensation",
    "confirmation_mode",
    "metrics",
    "json_logs",
];

/// The text `--version` prints: the version, then the features.
pub fn long_version() -> String {
    format!("{VERSION}\nfeatures: {}", FEATURES.join(", "))
}
