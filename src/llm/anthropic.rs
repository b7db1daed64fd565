//! The Anthropic Messages API, spoken natively; streamed (see `anthropic/stream.rs`)
//! when someone watches the answer being written or when so configured.

mod stream;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::lenient;
use super::openai::{AssembledChoice, AssembledCompletion, AssembledMessage};
use super::{
    ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmError, LlmSettings, ToolCall, Usage,
};

const VERSION: &str = "2023-06-01";

/// The output limit sent when none is configured (the API requires one).
const DEFAULT_MAX_TOKENS: u64 = 8192;

/// A client for `<base>/v1/messages`.
pub struct AnthropicClient {
    http: reqwest::Client,
    url: String,
    name: String,
    settings: LlmSettings,
}

// ---- The request ----

/// The body of `POST /v1/messages`. Field order is the wire's key order.
#[derive(Debug, Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u64,
    messages: Vec<Turn<'a>>,
    temperature: f64,
    /// The system messages, joined by blank lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDefinition<'a>>,
    /// `true` for a streamed answer; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

/// One turn: Anthropic wants user and assistant turns to alternate, so consecutive
/// messages of one role share a turn.
#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<RequestBlock<'a>>,
}

/// A content block of a request, tagged by its `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RequestBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        /// The call's arguments as an object (`{}` when they are not one).
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
    },
}

/// A tool, from an OpenAI-style function definition.
#[derive(Debug, Serialize)]
struct ToolDefinition<'a> {
    /// Passed through as the definition has it.
    name: &'a Value,
    description: Value,
    input_schema: Value,
}

impl<'a> ToolDefinition<'a> {
    /// The definition of `{"type": "function", "function": {…}}`; `None` without a name.
    fn from_openai(tool: &'a Value) -> Option<Self> {
        let f = tool.get("function")?;
        Some(ToolDefinition {
            name: f.get("name")?,
            description: f.get("description").cloned().unwrap_or(json!("")),
            input_schema: f
                .get("parameters")
                .cloned()
                .unwrap_or(json!({"type": "object"})),
        })
    }
}

/// The role and blocks of one message; `None` for system messages.
fn blocks(m: &ChatMessage) -> Option<(&'static str, Vec<RequestBlock<'_>>)> {
    Some(match m {
        ChatMessage::System(_) => return None,
        ChatMessage::User(text) => ("user", vec![RequestBlock::Text { text }]),
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            let text = content.as_deref().filter(|c| !c.is_empty());
            let text = text.map(|text| RequestBlock::Text { text });
            let calls = tool_calls.iter().map(|t| {
                let input: Value = serde_json::from_str(&t.arguments).unwrap_or_else(|_| json!({}));
                RequestBlock::ToolUse {
                    id: &t.id,
                    name: &t.name,
                    input: if input.is_object() { input } else { json!({}) },
                }
            });
            ("assistant", text.into_iter().chain(calls).collect())
        }
        ChatMessage::Tool {
            tool_call_id,
            content,
            ..
        } => (
            "user",
            vec![RequestBlock::ToolResult {
                tool_use_id: tool_call_id,
                content,
            }],
        ),
    })
}

// ---- The response ----

/// A Messages response, as far as it is read; odd fields read as empty (see
/// [`lenient`]), but the content blocks must be an array.
#[derive(Debug, Default, Deserialize)]
struct MessagesResponse {
    #[serde(default, deserialize_with = "lenient::or_default")]
    id: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient::array")]
    content: Option<Vec<ResponseBlock>>,
    /// Restated as the OpenAI shape's `finish_reason`.
    #[serde(default, deserialize_with = "lenient::or_default")]
    stop_reason: Option<String>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    usage: MessagesUsage,
}

/// A content block of a response; kinds other than text and tool use are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        #[serde(default, deserialize_with = "lenient::or_default")]
        text: String,
    },
    ToolUse {
        #[serde(default, deserialize_with = "lenient::or_default")]
        id: String,
        #[serde(default, deserialize_with = "lenient::or_default")]
        name: String,
        /// `None` only when absent.
        #[serde(default, deserialize_with = "lenient::present")]
        input: Option<Value>,
    },
    #[default]
    #[serde(other)]
    Other,
}

/// Token counts of a response.
#[derive(Debug, Default, Deserialize)]
struct MessagesUsage {
    #[serde(default, deserialize_with = "lenient::or_default")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    output_tokens: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    cache_read_input_tokens: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    cache_creation_input_tokens: u64,
}

/// The usage we restate in OpenAI's shape.
#[derive(Debug, Serialize)]
struct RestatedUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl AnthropicClient {
    pub fn new(http: reqwest::Client, base: String, name: String, settings: LlmSettings) -> Self {
        let base = base.trim_end_matches('/');
        let url = if base.ends_with("/v1") {
            format!("{base}/messages")
        } else {
            format!("{base}/v1/messages")
        };
        AnthropicClient {
            http,
            url,
            name,
            settings,
        }
    }

    fn body<'a>(&'a self, request: &'a ChatRequest) -> MessagesRequest<'a> {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter_map(|m| match m {
                ChatMessage::System(c) => Some(c.as_str()),
                _ => None,
            })
            .collect();
        let mut messages: Vec<Turn> = Vec::new();
        for (role, content) in request.messages.iter().filter_map(blocks) {
            if content.is_empty() {
                continue;
            }
            match messages.last_mut() {
                Some(last) if last.role == role => last.content.extend(content),
                _ => messages.push(Turn { role, content }),
            }
        }
        MessagesRequest {
            model: &self.name,
            max_tokens: self
                .settings
                .max_output_tokens
                .unwrap_or(DEFAULT_MAX_TOKENS),
            messages,
            temperature: self.settings.temperature,
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            tools: request
                .tools
                .iter()
                .filter_map(ToolDefinition::from_openai)
                .collect(),
            stream: self.streams(request).then_some(true),
        }
    }

    /// Whether `request` is asked as a stream: configured so, or someone watches the text.
    fn streams(&self, request: &ChatRequest) -> bool {
        self.settings.stream || request.text_sink.is_some()
    }
}

/// Reads a Messages response and restates it in OpenAI's shape for the metadata.
fn parse_response(v: Value) -> Result<ChatResponse, LlmError> {
    restate(MessagesResponse::deserialize(&v).unwrap_or_default())
}

/// The answer of a Messages response (read whole, or assembled from a stream), with
/// `raw` in OpenAI's shape for the metadata.
fn restate(response: MessagesResponse) -> Result<ChatResponse, LlmError> {
    let blocks = response
        .content
        .ok_or_else(|| LlmError::InvalidResponse("no content blocks".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: input.unwrap_or_else(|| json!({})).to_string(),
            }),
            ResponseBlock::Other => {}
        }
    }
    let u = &response.usage;
    let usage = Usage {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        cache_read_tokens: u.cache_read_input_tokens,
        cache_write_tokens: u.cache_creation_input_tokens,
    };
    let restated = AssembledCompletion {
        id: &response.id,
        object: "chat.completion",
        model: response.model.as_deref(),
        choices: [AssembledChoice {
            index: 0,
            message: AssembledMessage::new(&text, &tool_calls),
            finish_reason: response.stop_reason.as_deref(),
        }],
        usage: RestatedUsage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
        },
    };
    let raw =
        serde_json::to_value(&restated).map_err(|e| LlmError::InvalidResponse(e.to_string()))?;
    Ok(ChatResponse {
        id: response.id,
        content: Some(text).filter(|t| !t.is_empty()),
        tool_calls,
        usage,
        raw,
    })
}

#[async_trait]
impl LlmClient for AnthropicClient {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut req = self
            .http
            .post(&self.url)
            .timeout(self.settings.timeout)
            .header("anthropic-version", VERSION)
            .json(&self.body(request));
        if let Some(key) = self.settings.api_key.as_deref().filter(|k| !k.is_empty()) {
            req = req.header("x-api-key", key);
        }
        let res = super::send_json(req, &self.url).await?;
        if self.streams(request) {
            let sink = request.text_sink.as_ref();
            let limit = super::sse::LIMITS;
            stream::read(res.bytes_stream(), &self.url, sink, limit).await
        } else {
            parse_response(super::read_json(res).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_and_turns_are_merged_for_anthropic() {
        let c = AnthropicClient::new(
            reqwest::Client::new(),
            "https://x".into(),
            "claude".into(),
            crate::llm::LlmSettings {
                model: "anthropic/claude".into(),
                api_key: None,
                base_url: None,
                timeout: std::time::Duration::from_secs(1),
                temperature: 0.0,
                top_p: 1.0,
                max_output_tokens: None,
                stream: false,
            },
        );
        let req = ChatRequest {
            messages: vec![
                ChatMessage::System("sys".into()),
                ChatMessage::User("hi".into()),
                ChatMessage::Assistant {
                    content: Some("ok".into()),
                    tool_calls: vec![
                        ToolCall {
                            id: "a".into(),
                            name: "think".into(),
                            arguments: "{\"thought\":\"x\"}".into(),
                        },
                        ToolCall {
                            id: "b".into(),
                            name: "think".into(),
                            arguments: "{}".into(),
                        },
                    ],
                },
                ChatMessage::Tool {
                    tool_call_id: "a".into(),
                    name: "think".into(),
                    content: "1".into(),
                },
                ChatMessage::Tool {
                    tool_call_id: "b".into(),
                    name: "think".into(),
                    content: "2".into(),
                },
            ],
            tools: vec![
                json!({"type": "function", "function": {"name": "think", "description": "d", "parameters": {"type": "object"}}}),
            ],
            text_sink: None,
        };
        let body = serde_json::to_value(c.body(&req)).unwrap();
        assert_eq!(body["system"], "sys");
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(msgs[1]["content"][1]["input"]["thought"], "x");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(c.url, "https://x/v1/messages");
    }

    /// The body as the `json!`-built code before the typed request wrote it.
    fn legacy_body(name: &str, s: &LlmSettings, request: &ChatRequest) -> Value {
        let mut system = Vec::new();
        let mut messages: Vec<Value> = Vec::new();
        for m in &request.messages {
            let (role, blocks) = match m {
                ChatMessage::System(c) => {
                    system.push(c.clone());
                    continue;
                }
                ChatMessage::User(c) => ("user", vec![json!({"type": "text", "text": c})]),
                ChatMessage::Assistant {
                    content,
                    tool_calls,
                } => {
                    let mut blocks = Vec::new();
                    if let Some(c) = content.as_deref().filter(|c| !c.is_empty()) {
                        blocks.push(json!({"type": "text", "text": c}));
                    }
                    for t in tool_calls {
                        let input: Value =
                            serde_json::from_str(&t.arguments).unwrap_or_else(|_| json!({}));
                        let input = if input.is_object() { input } else { json!({}) };
                        blocks.push(
                            json!({"type": "tool_use", "id": t.id, "name": t.name, "input": input}),
                        );
                    }
                    ("assistant", blocks)
                }
                ChatMessage::Tool {
                    tool_call_id,
                    content,
                    ..
                } => (
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": content}),
                    ],
                ),
            };
            if blocks.is_empty() {
                continue;
            }
            match messages.last_mut() {
                Some(last) if last["role"] == role => {
                    if let Some(arr) = last["content"].as_array_mut() {
                        arr.extend(blocks);
                    }
                }
                _ => messages.push(json!({"role": role, "content": blocks})),
            }
        }
        let tools: Vec<Value> = request
            .tools
            .iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                Some(json!({"name": f.get("name")?, "description": f.get("description").cloned().unwrap_or(json!("")), "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))}))
            })
            .collect();
        let mut body = json!({"model": name, "max_tokens": s.max_output_tokens.unwrap_or(8192), "messages": messages, "temperature": s.temperature});
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools);
        }
        body
    }

    #[test]
    fn the_request_body_is_byte_for_byte_the_legacy_one() {
        let mut settings = crate::llm::LlmSettings {
            model: "anthropic/claude".into(),
            api_key: None,
            base_url: None,
            timeout: std::time::Duration::from_secs(1),
            temperature: 0.25,
            top_p: 1.0,
            max_output_tokens: Some(100),
            stream: false,
        };
        let full = ChatRequest {
            messages: vec![
                ChatMessage::System("one".into()),
                ChatMessage::System("two \"q\"".into()),
                ChatMessage::User("hi ✓".into()),
                ChatMessage::Assistant {
                    content: Some(String::new()),
                    tool_calls: vec![],
                },
                ChatMessage::User("again".into()),
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![
                        ToolCall {
                            id: "a".into(),
                            name: "x".into(),
                            arguments: "[1]".into(),
                        },
                        ToolCall {
                            id: "b".into(),
                            name: "x".into(),
                            arguments: "not json".into(),
                        },
                        ToolCall {
                            id: "c".into(),
                            name: "x".into(),
                            arguments: "{\"k\":[1,{\"z\":null}]}".into(),
                        },
                    ],
                },
                ChatMessage::Tool {
                    tool_call_id: "a".into(),
                    name: "x".into(),
                    content: "r".into(),
                },
            ],
            tools: vec![
                json!({"type": "function", "function": {"name": "x", "description": "d", "parameters": {"type": "object", "properties": {}}}}),
                json!({"type": "function", "function": {"name": "y"}}),
                json!({"type": "function", "function": {"description": "nameless"}}),
                json!({"type": "other"}),
            ],
            text_sink: None,
        };
        let bare = ChatRequest {
            messages: vec![ChatMessage::User("hi".into())],
            tools: vec![],
            text_sink: None,
        };
        for request in [&full, &bare] {
            for max in [Some(100), None] {
                settings.max_output_tokens = max;
                let c = AnthropicClient::new(
                    reqwest::Client::new(),
                    "https://x/v1".into(),
                    "claude".into(),
                    settings.clone(),
                );
                assert_eq!(
                    serde_json::to_vec(&c.body(request)).unwrap(),
                    serde_json::to_vec(&legacy_body("claude", &settings, request)).unwrap()
                );
            }
        }
    }

    #[test]
    fn a_response_is_restated_in_openai_shape() {
        let v = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hm"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "look."},
                {"type": "tool_use", "id": "tu1", "name": "execute_bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "tu2", "name": "think"}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 6, "cache_creation_input_tokens": 2}
        });
        let r = parse_response(v).unwrap();
        assert_eq!(r.content.as_deref(), Some("Let me look."));
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 4,
                cache_read_tokens: 6,
                cache_write_tokens: 2
            }
        );
        assert_eq!(
            r.raw.to_string(),
            json!({
                "id": "msg_1", "object": "chat.completion", "model": "claude-x",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "tu1", "type": "function", "function": {"name": "execute_bash", "arguments": "{\"command\":\"ls\"}"}},
                    {"id": "tu2", "type": "function", "function": {"name": "think", "arguments": "{}"}}
                ]}, "finish_reason": "tool_use"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
            })
            .to_string()
        );
        let bare = parse_response(json!({"content": []})).unwrap();
        assert_eq!(
            bare.raw.to_string(),
            r#"{"id":"","object":"chat.completion","model":null,"choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":null}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}"#
        );
        assert!(matches!(
            parse_response(json!({"content": "x"})),
            Err(LlmError::InvalidResponse(_))
        ));
    }
}
