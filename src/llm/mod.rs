//! LLM clients: OpenAI-compatible Chat Completions and the Anthropic Messages API,
//! behind one [`LlmClient`] interface, with retries and token/cost accounting.
//!
//! Each client's file holds its wire shapes as serde structs (requests serialize to the
//! exact bytes providers get; answers read leniently, see `lenient.rs`); both send
//! through `send_json`, the one place HTTP errors and `Retry-After` are mapped.

mod anthropic;
mod lenient;
mod openai;
pub mod pricing;
mod retry;
mod sse;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use thiserror::Error;

pub use anthropic::AnthropicClient;
pub use openai::{tool_calls_of, OpenAiClient};
pub use retry::{with_retries, RetryEvent, RetryPolicy};

/// A chat message in the provider-neutral form the agent builds.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    System(String),
    User(String),
    Assistant {
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        name: String,
        content: String,
    },
}

/// A tool call the model asked for; `arguments` is the JSON text it produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One completion request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// OpenAI-style function tool definitions (`{"type":"function","function":{…}}`).
    pub tools: Vec<Value>,
    /// Who wants the answer's text as it is written. Clients then stream the answer; the
    /// response is the same whole answer either way.
    pub text_sink: Option<TextSink>,
}

/// Receives the model's text as it is written (see [`ChatRequest::text_sink`]).
#[derive(Clone)]
pub struct TextSink {
    write: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
    restart: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
}

impl TextSink {
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        TextSink {
            write: std::sync::Arc::new(f),
            restart: None,
        }
    }

    /// A sink that is also told when a retried request starts its answer over.
    pub fn with_restart(
        write: impl Fn(&str) + Send + Sync + 'static,
        restart: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        TextSink {
            write: std::sync::Arc::new(write),
            restart: Some(std::sync::Arc::new(restart)),
        }
    }

    /// Hands on the next piece of text.
    pub fn write(&self, text: &str) {
        (self.write)(text)
    }

    /// The text so far is void: the request is being sent again.
    pub fn restart(&self) {
        if let Some(restart) = &self.restart {
            restart()
        }
    }
}

impl std::fmt::Debug for TextSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextSink")
    }
}

/// Token usage of one response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// The model's answer.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub id: String,
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// The response in OpenAI's shape, for `tool_call_metadata.model_response`.
    pub raw: Value,
}

/// Why a completion failed.
#[derive(Debug, Error, Clone)]
pub enum LlmError {
    #[error("the LLM provider rejected the API key (HTTP {0}): {1}")]
    Authentication(u16, String),
    #[error("rate limited by the LLM provider: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("the LLM service is unavailable (HTTP {0}): {1}")]
    Unavailable(u16, String),
    #[error("the LLM request timed out")]
    Timeout,
    #[error("cannot reach the LLM at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::sync::Arc<reqwest::Error>,
    },
    #[error("cannot set up the HTTP client for the LLM: {0}")]
    Setup(String),
    #[error("the LLM provider refused the request (HTTP {0}): {1}")]
    BadRequest(u16, String),
    #[error("the LLM answered something unreadable: {0}")]
    InvalidResponse(String),
    /// The answer's body could not be read or decoded.
    #[error("the LLM answered something unreadable: {0}")]
    Decode(#[source] std::sync::Arc<reqwest::Error>),
}

impl LlmError {
    /// Whether trying again may help.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Unavailable(..)
                | LlmError::Timeout
                | LlmError::Connect { .. }
        )
    }

    /// Whether the provider said the prompt is longer than the model's context window.
    pub fn is_context_length(&self) -> bool {
        let LlmError::BadRequest(_, message) = self else {
            return false;
        };
        let m = message.to_ascii_lowercase();
        [
            "context length",
            "context_length",
            "maximum context",
            "context window",
            "too many tokens",
            "prompt is too long",
        ]
        .iter()
        .any(|k| m.contains(k))
    }

    /// The RuntimeStatus id upstream's UI knows for this error.
    pub fn status_id(&self) -> &'static str {
        match self {
            LlmError::Authentication(..) => "STATUS$ERROR_LLM_AUTHENTICATION",
            LlmError::RateLimited { .. } => "CHAT_INTERFACE$AGENT_RATE_LIMITED_STOPPED_MESSAGE",
            LlmError::Unavailable(..) | LlmError::Timeout | LlmError::Connect { .. } => {
                "STATUS$ERROR_LLM_SERVICE_UNAVAILABLE"
            }
            LlmError::BadRequest(..)
            | LlmError::InvalidResponse(_)
            | LlmError::Decode(_)
            | LlmError::Setup(_) => "STATUS$ERROR_LLM_INTERNAL_SERVER_ERROR",
        }
    }

    /// Maps an HTTP error status and body.
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> LlmError {
        let message = error_message(body);
        match status {
            401 | 403 => LlmError::Authentication(status, message),
            429 => LlmError::RateLimited {
                message,
                retry_after,
            },
            408 => LlmError::Timeout,
            500..=599 => LlmError::Unavailable(status, message),
            _ => LlmError::BadRequest(status, message),
        }
    }

    /// Maps a transport error of `url`.
    pub fn from_reqwest(url: &str, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout
        } else {
            LlmError::Connect {
                url: url.to_string(),
                source: std::sync::Arc::new(e),
            }
        }
    }
}

/// The `error.message` of a provider's JSON error body, else the body itself (shortened).
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
        })
        .and_then(Value::as_str)
        .map(str::to_string);
    let text = message.unwrap_or_else(|| body.trim().to_string());
    text.chars().take(500).collect()
}

/// A chat-completion backend.
#[async_trait]
pub trait LlmClient: Send + Sync {
    /// One completion (no retries; see [`with_retries`]).
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// Everything needed to build a client.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub model: String,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub timeout: Duration,
    pub temperature: f64,
    pub top_p: f64,
    pub max_output_tokens: Option<u64>,
    /// Stream responses even when nobody watches the text.
    pub stream: bool,
}

/// Which API a model speaks, from its provider prefix and base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
}

/// Splits `anthropic/claude-…` into the provider and the name the provider expects.
pub fn route_model(model: &str, base_url: Option<&str>) -> (Provider, String) {
    let (prefix, name) = match model.split_once('/') {
        Some((p, n)) => (p, n),
        None => ("", model),
    };
    match prefix {
        "anthropic" => (Provider::Anthropic, name.to_string()),
        "openai" | "ollama" | "ollama_chat" | "hosted_vllm" | "vllm" | "litellm_proxy"
        | "lm_studio" | "llamacpp" | "openrouter" | "deepseek" | "groq" | "together_ai"
        | "mistral" | "xai" | "fireworks_ai" => (Provider::OpenAi, name.to_string()),
        // No known prefix: Claude models go to Anthropic unless a base URL says otherwise.
        _ if model.starts_with("claude") && base_url.is_none() => {
            (Provider::Anthropic, model.to_string())
        }
        _ => (Provider::OpenAi, model.to_string()),
    }
}

/// The default API base for a model's provider prefix, when no base URL is configured.
pub fn default_base_url(model: &str) -> &'static str {
    match model.split_once('/').map(|(p, _)| p) {
        Some("anthropic") => "https://api.anthropic.com",
        Some("ollama") | Some("ollama_chat") => "http://localhost:11434/v1",
        Some("openrouter") => "https://openrouter.ai/api/v1",
        Some("deepseek") => "https://api.deepseek.com/v1",
        Some("groq") => "https://api.groq.com/openai/v1",
        Some("mistral") => "https://api.mistral.ai/v1",
        Some("xai") => "https://api.x.ai/v1",
        Some("together_ai") => "https://api.together.xyz/v1",
        Some("fireworks_ai") => "https://api.fireworks.ai/inference/v1",
        _ if model.starts_with("claude") => "https://api.anthropic.com",
        _ => "https://api.openai.com/v1",
    }
}

/// The one HTTP client of the process: its connection pool (and TLS sessions) serve
/// every conversation's LLM calls; each request carries its own timeout.
fn shared_http() -> Result<reqwest::Client, String> {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = HTTP.get() {
        return Ok(c.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("openhands-server/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(HTTP.get_or_init(|| client).clone())
}

/// A response's `Retry-After` in seconds (the HTTP-date form is not used by LLM APIs).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
}

/// Sends a request to the LLM and maps what can go wrong on the way: transport errors and
/// non-success statuses (with the body's message and any `Retry-After`).
pub(crate) async fn send_json(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<reqwest::Response, LlmError> {
    let res = request
        .send()
        .await
        .map_err(|e| LlmError::from_reqwest(url, e))?;
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let after = retry_after(res.headers());
    let body = res.text().await.unwrap_or_default();
    Err(LlmError::from_status(status.as_u16(), &body, after))
}

/// Reads a successful response's JSON body.
pub(crate) async fn read_json(res: reqwest::Response) -> Result<Value, LlmError> {
    res.json()
        .await
        .map_err(|e| LlmError::Decode(std::sync::Arc::new(e)))
}

/// The `error` object of a streamed chunk, as far as it decides the error's kind.
#[derive(Debug, Default, Deserialize)]
struct StreamErrorObject {
    /// An HTTP-like status some providers give.
    #[serde(default, deserialize_with = "lenient::or_default")]
    code: Option<u64>,
    /// OpenAI's error type, such as `rate_limit_exceeded`.
    #[serde(default, rename = "type", deserialize_with = "lenient::or_default")]
    kind: Option<String>,
}

/// A provider's error object found inside a streamed answer (`{"error": …}` as a `data:`
/// chunk): the request failed after all.
pub fn stream_error(chunk: &Value) -> Option<LlmError> {
    let error = StreamErrorObject::deserialize(chunk.get("error")?).unwrap_or_default();
    let status = error
        .code
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or_else(|| {
            let kind = error.kind.as_deref().unwrap_or("");
            if kind.contains("rate_limit") {
                429
            } else if kind.contains("invalid_request") {
                400
            } else {
                500
            }
        });
    Some(LlmError::from_status(status, &chunk.to_string(), None))
}

/// Builds the client for `settings`.
pub fn client(settings: &LlmSettings) -> Result<Box<dyn LlmClient>, LlmError> {
    let (provider, name) = route_model(&settings.model, settings.base_url.as_deref());
    let base = settings
        .base_url
        .clone()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| default_base_url(&settings.model).to_string());
    let http = shared_http().map_err(LlmError::Setup)?;
    Ok(match provider {
        Provider::Anthropic => Box::new(AnthropicClient::new(http, base, name, settings.clone())),
        Provider::OpenAi => Box::new(OpenAiClient::new(http, base, name, settings.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chunk_in_a_stream_is_an_error() {
        let rate = stream_error(
            &serde_json::json!({"error": {"type": "rate_limit_exceeded", "message": "slow down"}}),
        );
        assert!(
            matches!(rate, Some(LlmError::RateLimited { .. })),
            "{rate:?}"
        );
        let coded =
            stream_error(&serde_json::json!({"error": {"code": 401, "message": "bad key"}}));
        assert!(
            matches!(coded, Some(LlmError::Authentication(401, _))),
            "{coded:?}"
        );
        let other = stream_error(&serde_json::json!({"error": {"message": "overloaded"}}));
        assert!(
            matches!(other, Some(LlmError::Unavailable(500, _))),
            "{other:?}"
        );
        assert!(stream_error(&serde_json::json!({"choices": []})).is_none());
    }

    #[test]
    fn models_route_to_their_provider() {
        assert_eq!(
            route_model("anthropic/claude-sonnet-4-20250514", None),
            (Provider::Anthropic, "claude-sonnet-4-20250514".into())
        );
        assert_eq!(
            route_model("openai/gpt-4o", None),
            (Provider::OpenAi, "gpt-4o".into())
        );
        assert_eq!(
            route_model("gpt-4o", None),
            (Provider::OpenAi, "gpt-4o".into())
        );
        assert_eq!(
            route_model("claude-3-5-haiku", None),
            (Provider::Anthropic, "claude-3-5-haiku".into())
        );
        assert_eq!(
            route_model("ollama/llama3.1", None),
            (Provider::OpenAi, "llama3.1".into())
        );
        assert_eq!(
            route_model("Qwen/Qwen2.5-Coder", Some("http://x/v1")),
            (Provider::OpenAi, "Qwen/Qwen2.5-Coder".into())
        );
        assert_eq!(
            default_base_url("ollama/llama3.1"),
            "http://localhost:11434/v1"
        );
    }

    #[test]
    fn http_errors_map_to_kinds() {
        assert!(
            matches!(LlmError::from_status(401, r#"{"error":{"message":"bad key"}}"#, None), LlmError::Authentication(401, m) if m == "bad key")
        );
        assert!(LlmError::from_status(429, "", None).retryable());
        assert!(LlmError::from_status(503, "", None).retryable());
        assert!(!LlmError::from_status(400, "", None).retryable());
    }
}
