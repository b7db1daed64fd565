//! The Anthropic Messages API, spoken natively.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmError, LlmSettings, ToolCall, Usage,
};

const VERSION: &str = "2023-06-01";

/// A client for `<base>/v1/messages`.
pub struct AnthropicClient {
    http: reqwest::Client,
    url: String,
    name: String,
    settings: LlmSettings,
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

    fn body(&self, request: &ChatRequest) -> Value {
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
            // Consecutive turns of one role are one message for Anthropic.
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
        let mut body = json!({
            "model": self.name,
            "max_tokens": self.settings.max_output_tokens.unwrap_or(8192),
            "messages": messages,
            "temperature": self.settings.temperature,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools);
        }
        body
    }
}

/// Reads a Messages response and restates it in OpenAI's shape for the metadata.
fn parse_response(v: Value) -> Result<ChatResponse, LlmError> {
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| LlmError::InvalidResponse("no content blocks".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                arguments: b.get("input").cloned().unwrap_or(json!({})).to_string(),
            }),
            _ => {}
        }
    }
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let usage = Usage {
        prompt_tokens: n("/usage/input_tokens"),
        completion_tokens: n("/usage/output_tokens"),
        cache_read_tokens: n("/usage/cache_read_input_tokens"),
        cache_write_tokens: n("/usage/cache_creation_input_tokens"),
    };
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let content = Some(text).filter(|t| !t.is_empty());
    let calls: Vec<Value> = tool_calls
        .iter()
        .map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let raw = json!({
        "id": id,
        "object": "chat.completion",
        "model": v.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "finish_reason": v.get("stop_reason").cloned().unwrap_or(Value::Null)}],
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.prompt_tokens + usage.completion_tokens},
    });
    Ok(ChatResponse {
        id,
        content,
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
        let res = req
            .send()
            .await
            .map_err(|e| LlmError::from_reqwest(&self.url, e))?;
        let status = res.status();
        if !status.is_success() {
            let after = super::retry_after(res.headers());
            let body = res.text().await.unwrap_or_default();
            return Err(LlmError::from_status(status.as_u16(), &body, after));
        }
        let v: Value = res
            .json()
            .await
            .map_err(|e| LlmError::Decode(std::sync::Arc::new(e)))?;
        parse_response(v)
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
        };
        let body = c.body(&req);
        assert_eq!(body["system"], "sys");
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(msgs[1]["content"][1]["input"]["thought"], "x");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(c.url, "https://x/v1/messages");
    }
}
