//! `[mcp]` in `config.toml` and the settings' `mcp_config`: upstream's shape
//! (`sse_servers`, `shttp_servers`, `stdio_servers`) plus our call and start timeouts.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why an MCP configuration cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum McpConfigError {
    #[error("invalid MCP configuration: {0}")]
    Invalid(String),
}

/// A value that is never shown in logs or `Debug` output (API keys, environment values).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// An SSE or streamable-HTTP server: a URL string, or `{url, api_key, timeout}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteServer {
    pub url: String,
    pub api_key: Option<Secret>,
    /// Seconds a tool call may take on this server (upstream's `timeout`).
    pub timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RemoteForm {
    Url(String),
    Full {
        url: String,
        #[serde(default)]
        api_key: Option<Secret>,
        #[serde(default)]
        timeout: Option<u64>,
    },
}

impl<'de> Deserialize<'de> for RemoteServer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let form = RemoteForm::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "an MCP server is a URL string or a table with `url` and optional `api_key` and `timeout`",
            )
        })?;
        Ok(match form {
            RemoteForm::Url(url) => RemoteServer {
                url,
                api_key: None,
                timeout: None,
            },
            RemoteForm::Full {
                url,
                api_key,
                timeout,
            } => RemoteServer {
                url,
                api_key: api_key.filter(|k| !k.0.is_empty()),
                timeout,
            },
        })
    }
}

/// A server started as a child process speaking MCP on its stdin and stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StdioServer {
    pub name: String,
    pub command: String,
    /// A list, or one string split like a shell would.
    #[serde(default, deserialize_with = "args_list")]
    pub args: Vec<String>,
    /// A table, or `"KEY=value,KEY2=value"`.
    #[serde(default, deserialize_with = "env_table")]
    pub env: BTreeMap<String, Secret>,
}

fn args_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Line(String),
    }
    match Form::deserialize(d)? {
        Form::List(l) => Ok(l),
        Form::Line(line) => shlex::split(&line).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "cannot split the arguments {line:?} (unmatched quote?)"
            ))
        }),
    }
}

fn env_table<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Table(BTreeMap<String, Secret>),
        Line(String),
    }
    match Form::deserialize(d)? {
        Form::Table(t) => Ok(t),
        Form::Line(line) => {
            let mut out = BTreeMap::new();
            for pair in line.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "environment entry {:?} is not KEY=VALUE",
                        pair.split('=').next().unwrap_or("")
                    ))
                })?;
                out.insert(k.trim().to_string(), Secret(v.to_string()));
            }
            Ok(out)
        }
    }
}

fn default_call_timeout() -> u64 {
    60
}
fn default_start_timeout() -> u64 {
    30
}

/// The MCP servers a conversation's agent uses as tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    #[serde(default)]
    pub sse_servers: Vec<RemoteServer>,
    #[serde(default)]
    pub shttp_servers: Vec<RemoteServer>,
    #[serde(default)]
    pub stdio_servers: Vec<StdioServer>,
    /// Seconds a tool call may take before the model gets an error (ours; a remote
    /// server's own `timeout` wins).
    #[serde(default = "default_call_timeout")]
    pub call_timeout: u64,
    /// Seconds a server has to start and list its tools (ours).
    #[serde(default = "default_start_timeout")]
    pub start_timeout: u64,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            sse_servers: Vec::new(),
            shttp_servers: Vec::new(),
            stdio_servers: Vec::new(),
            call_timeout: default_call_timeout(),
            start_timeout: default_start_timeout(),
        }
    }
}

/// Longest timeout accepted, as upstream (one hour).
const MAX_TIMEOUT: u64 = 3600;

impl McpConfig {
    /// The settings' `mcp_config` (null means none).
    pub fn from_settings(value: &Value) -> Result<McpConfig, McpConfigError> {
        if value.is_null() {
            return Ok(McpConfig::default());
        }
        let config: McpConfig = serde_json::from_value(value.clone())
            .map_err(|e| McpConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.sse_servers.is_empty()
            && self.shttp_servers.is_empty()
            && self.stdio_servers.is_empty()
    }

    /// This configuration's servers followed by `other`'s (a server listed in both,
    /// same URL or same stdio name, is kept once); the timeouts stay this one's.
    pub fn merge(mut self, other: McpConfig) -> McpConfig {
        for s in other.sse_servers {
            if !self.sse_servers.iter().any(|o| o.url == s.url) {
                self.sse_servers.push(s);
            }
        }
        for s in other.shttp_servers {
            if !self.shttp_servers.iter().any(|o| o.url == s.url) {
                self.shttp_servers.push(s);
            }
        }
        for s in other.stdio_servers {
            if !self.stdio_servers.iter().any(|o| o.name == s.name) {
                self.stdio_servers.push(s);
            }
        }
        self
    }

    /// Checks names, commands, URLs and timeouts as upstream does.
    pub fn validate(&self) -> Result<(), McpConfigError> {
        let bad = |m: String| Err(McpConfigError::Invalid(m));
        for (what, t) in [
            ("call_timeout", self.call_timeout),
            ("start_timeout", self.start_timeout),
        ] {
            if t == 0 || t > MAX_TIMEOUT {
                return bad(format!(
                    "`{what}` must be between 1 and {MAX_TIMEOUT} seconds"
                ));
            }
        }
        for s in self.sse_servers.iter().chain(&self.shttp_servers) {
            let url = url::Url::parse(s.url.trim())
                .map_err(|e| McpConfigError::Invalid(format!("server URL {:?}: {e}", s.url)))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return bad(format!("server URL {:?} must be http(s)://host/...", s.url));
            }
            if s.timeout.is_some_and(|t| t == 0 || t > MAX_TIMEOUT) {
                return bad(format!(
                    "the timeout of {:?} must be between 1 and {MAX_TIMEOUT} seconds",
                    s.url
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.stdio_servers {
            let name = s.name.trim();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(format!(
                    "stdio server name {:?}: 1 to 64 letters, digits, hyphens and underscores",
                    s.name
                ));
            }
            if !names.insert(name) {
                return bad(format!("two stdio servers are named {name:?}"));
            }
            if s.command.trim().is_empty() || s.command.trim().contains(' ') {
                return bad(format!(
                    "stdio server {name:?}: `command` is one program without spaces (arguments go in `args`)"
                ));
            }
            if let Some(k) = s.env.keys().find(|k| {
                k.is_empty()
                    || k.starts_with(|c: char| c.is_ascii_digit())
                    || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                return bad(format!(
                    "stdio server {name:?}: invalid environment variable name {k:?}"
                ));
            }
        }
        Ok(())
    }

    /// Every secret value (API keys, environment values), to keep them out of what
    /// clients and logs see.
    pub fn secrets(&self) -> Vec<String> {
        let keys = self
            .sse_servers
            .iter()
            .chain(&self.shttp_servers)
            .filter_map(|s| s.api_key.as_ref());
        let env = self.stdio_servers.iter().flat_map(|s| s.env.values());
        keys.chain(env)
            .map(|s| s.0.clone())
            .filter(|s| s.len() >= 4)
            .collect()
    }
}

/// `text` with every secret replaced by `<hidden>`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<hidden>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_shapes_parse_urls_strings_and_tables() {
        let c = McpConfig::from_settings(&json!({
            "sse_servers": ["http://a.example/sse"],
            "shttp_servers": [{"url": "https://b.example/mcp", "api_key": "sk-123456", "timeout": 5}],
            "stdio_servers": [
                {"name": "fs", "command": "npx", "args": "-y \"some pkg\"", "env": "A=1,B=two"},
                {"name": "gh", "command": "gh-mcp", "args": ["--x"], "env": {"TOKEN": "t0ken"}}
            ]
        }))
        .unwrap();
        assert_eq!(c.sse_servers[0].url, "http://a.example/sse");
        assert_eq!(c.shttp_servers[0].timeout, Some(5));
        assert_eq!(c.stdio_servers[0].args, vec!["-y", "some pkg"]);
        assert_eq!(c.stdio_servers[0].env["B"], Secret("two".into()));
        assert_eq!(c.call_timeout, 60);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("sk-123456") && !shown.contains("t0ken"),
            "{shown}"
        );
        assert_eq!(c.secrets(), vec!["sk-123456", "t0ken"]);
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        for (bad, why) in [
            (
                json!({"stdio_servers": [{"name": "a b", "command": "x"}]}),
                "name",
            ),
            (
                json!({"stdio_servers": [{"name": "a", "command": "npx -y"}]}),
                "spaces",
            ),
            (
                json!({"stdio_servers": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}),
                "two",
            ),
            (json!({"shttp_servers": ["ftp://x/y"]}), "http"),
            (json!({"shttp_servers": [42]}), "URL string"),
            (json!({"sse_servers": ["not a url"]}), "URL"),
            (json!({"call_timeout": 0}), "call_timeout"),
            (json!({"bogus": []}), "bogus"),
            (
                json!({"stdio_servers": [{"name": "a", "command": "x", "env": "NOEQUALS"}]}),
                "KEY=VALUE",
            ),
            (json!([1, 2]), "invalid"),
        ] {
            let err = McpConfig::from_settings(&bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn merging_keeps_both_lists_and_one_copy_of_a_server() {
        let a = McpConfig::from_settings(
            &json!({"stdio_servers": [{"name": "x", "command": "a"}], "call_timeout": 7}),
        )
        .unwrap();
        let b = McpConfig::from_settings(&json!({"stdio_servers": [{"name": "x", "command": "b"}, {"name": "y", "command": "c"}], "shttp_servers": ["http://h/mcp"]})).unwrap();
        let m = a.merge(b);
        assert_eq!(m.stdio_servers.len(), 2);
        assert_eq!(m.stdio_servers[0].command, "a");
        assert_eq!(m.shttp_servers.len(), 1);
        assert_eq!(m.call_timeout, 7);
    }

    #[test]
    fn redaction_hides_every_secret() {
        assert_eq!(
            redact("key sk-1234 and sk-1234", &["sk-1234".into()]),
            "key <hidden> and <hidden>"
        );
    }
}
