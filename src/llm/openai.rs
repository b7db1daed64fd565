//! OpenAI-compatible Chat Completions (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM proxies),
//! streaming or not.

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::{
    ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmError, LlmSettings, ToolCall, Usage,
};

/// A client for `<base>/chat/completions`.
pub struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    name: String,
    settings: LlmSettings,
}

impl OpenAiClient {
    pub fn new(http: reqwest::Client, base: String, name: String, settings: LlmSettings) -> Self {
        let url = format!("{}/chat/completions", base.trim_end_matches('/'));
        OpenAiClient {
            http,
            url,
            name,
            settings,
        }
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request.messages.iter().map(message_json).collect();
        let mut body = json!({
            "model": self.name,
            "messages": messages,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
        });
        if !request.tools.is_empty() {
            body["tools"] = Value::Array(request.tools.clone());
            body["tool_choice"] = json!("auto");
        }
        if let Some(max) = self.settings.max_output_tokens {
            body["max_tokens"] = json!(max);
        }
        if self.settings.stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }
}

fn message_json(m: &ChatMessage) -> Value {
    match m {
        ChatMessage::System(c) => json!({"role": "system", "content": c}),
        ChatMessage::User(c) => json!({"role": "user", "content": c}),
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            let mut v = json!({"role": "assistant", "content": content});
            if !tool_calls.is_empty() {
                v["tool_calls"] = tool_calls
                    .iter()
                    .map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}))
                    .collect();
            }
            v
        }
        ChatMessage::Tool {
            tool_call_id,
            name,
            content,
        } => {
            json!({"role": "tool", "tool_call_id": tool_call_id, "name": name, "content": content})
        }
    }
}

/// The tool calls of an assistant message in OpenAI's shape.
pub fn tool_calls_of(message: &Value) -> Vec<ToolCall> {
    let text = |t: &Value, p: &str| {
        t.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| ToolCall {
            id: text(t, "/id"),
            name: text(t, "/function/name"),
            arguments: match t.pointer("/function/arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "{}".into(),
            },
        })
        .collect()
}

/// Reads a non-streamed response.
fn parse_response(v: Value) -> Result<ChatResponse, LlmError> {
    let message = v
        .pointer("/choices/0/message")
        .ok_or_else(|| LlmError::InvalidResponse("no choices[0].message".into()))?;
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|c| !c.is_empty());
    let tool_calls = tool_calls_of(message);
    Ok(ChatResponse {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        content,
        tool_calls,
        usage: usage(v.get("usage")),
        raw: v,
    })
}

fn usage(u: Option<&Value>) -> Usage {
    let n = |p: &str| {
        u.and_then(|u| u.pointer(p))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        prompt_tokens: n("/prompt_tokens"),
        completion_tokens: n("/completion_tokens"),
        cache_read_tokens: n("/prompt_tokens_details/cached_tokens"),
        cache_write_tokens: 0,
    }
}

/// Accumulates streamed deltas into one response in the non-streamed shape.
#[derive(Default)]
struct StreamState {
    id: String,
    model: String,
    content: String,
    /// (id, name, arguments) by index.
    calls: Vec<(String, String, String)>,
    usage: Option<Value>,
}

impl StreamState {
    fn push(&mut self, chunk: &Value) {
        if let Some(id) = chunk.get("id").and_then(Value::as_str) {
            self.id = id.to_string();
        }
        if let Some(m) = chunk.get("model").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(delta) = chunk.pointer("/choices/0/delta") else {
            return;
        };
        if let Some(c) = delta.get("content").and_then(Value::as_str) {
            self.content.push_str(c);
        }
        for t in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = t.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if index > 1024 {
                continue;
            }
            while self.calls.len() <= index {
                self.calls.push(Default::default());
            }
            let call = &mut self.calls[index];
            if let Some(id) = t.get("id").and_then(Value::as_str) {
                call.0 = id.to_string();
            }
            if let Some(n) = t.pointer("/function/name").and_then(Value::as_str) {
                call.1.push_str(n);
            }
            if let Some(a) = t.pointer("/function/arguments").and_then(Value::as_str) {
                call.2.push_str(a);
            }
        }
    }

    fn finish(self) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert(
            "content".into(),
            if self.content.is_empty() {
                Value::Null
            } else {
                json!(self.content)
            },
        );
        if !self.calls.is_empty() {
            let calls: Vec<Value> = self
                .calls
                .into_iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        json!({"id": self.id, "object": "chat.completion", "model": self.model, "choices": [{"index": 0, "message": message, "finish_reason": null}], "usage": self.usage})
    }
}

#[async_trait]
impl LlmClient for OpenAiClient {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut req = self
            .http
            .post(&self.url)
            .timeout(self.settings.timeout)
            .json(&self.body(request));
        if let Some(key) = self.settings.api_key.as_deref().filter(|k| !k.is_empty()) {
            req = req.bearer_auth(key);
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
        if !self.settings.stream {
            let v: Value = res
                .json()
                .await
                .map_err(|e| LlmError::Decode(std::sync::Arc::new(e)))?;
            return parse_response(v);
        }
        let mut state = StreamState::default();
        let mut pending = Vec::new();
        let mut body = res.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| LlmError::from_reqwest(&self.url, e))?;
            pending.extend_from_slice(&chunk);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    continue;
                }
                if let Ok(v) = serde_json::from_str::<Value>(data) {
                    if let Some(e) = super::stream_error(&v) {
                        return Err(e);
                    }
                    state.push(&v);
                }
            }
        }
        parse_response(state.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_deltas_assemble_into_one_message() {
        let mut s = StreamState::default();
        for chunk in [
            json!({"id": "c1", "choices": [{"delta": {"content": "Let me "}}]}),
            json!({"id": "c1", "choices": [{"delta": {"content": "look.", "tool_calls": [{"index": 0, "id": "t1", "function": {"name": "execute_bash", "arguments": "{\"comm"}}]}}]}),
            json!({"id": "c1", "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "and\": \"ls\"}"}}]}}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}),
        ] {
            s.push(&chunk);
        }
        let r = parse_response(s.finish()).unwrap();
        assert_eq!(r.content.as_deref(), Some("Let me look."));
        assert_eq!(
            r.tool_calls,
            vec![ToolCall {
                id: "t1".into(),
                name: "execute_bash".into(),
                arguments: "{\"command\": \"ls\"}".into()
            }]
        );
        assert_eq!(r.usage.prompt_tokens, 10);
    }
}
