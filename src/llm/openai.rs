//! OpenAI-compatible Chat Completions (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM proxies),
//! streaming or not.

use async_trait::async_trait;
use bytes::Bytes;
use eventsource_stream::Event;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient;
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

// ---- The request ----

/// The body of `POST /chat/completions`. Field order is the wire's key order.
#[derive(Debug, Serialize)]
struct CompletionRequest<'a> {
    model: &'a str,
    messages: Vec<RequestMessage<'a>>,
    temperature: f64,
    top_p: f64,
    /// Function tool definitions, passed through as the agent wrote them.
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Value]>,
    /// `"auto"` whenever there are tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

/// Asks a streamed answer to end with a usage chunk.
#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// One message of the conversation, tagged by its `role`.
#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum RequestMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        /// `null` when the turn was only tool calls.
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<FunctionCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        name: &'a str,
        content: &'a str,
    },
}

impl<'a> From<&'a ChatMessage> for RequestMessage<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        match m {
            ChatMessage::System(content) => RequestMessage::System { content },
            ChatMessage::User(content) => RequestMessage::User { content },
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => RequestMessage::Assistant {
                content: content.as_deref(),
                tool_calls: tool_calls.iter().map(FunctionCall::from).collect(),
            },
            ChatMessage::Tool {
                tool_call_id,
                name,
                content,
            } => RequestMessage::Tool {
                tool_call_id,
                name,
                content,
            },
        }
    }
}

/// A tool call as OpenAI writes it: `{"id", "type": "function", "function": {…}}`; in
/// requests and in the responses we assemble.
#[derive(Debug, Serialize)]
pub(super) struct FunctionCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCallBody<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionCallBody<'a> {
    name: &'a str,
    /// The arguments' JSON text.
    arguments: &'a str,
}

impl<'a> From<&'a ToolCall> for FunctionCall<'a> {
    fn from(t: &'a ToolCall) -> Self {
        FunctionCall {
            id: &t.id,
            kind: "function",
            function: FunctionCallBody {
                name: &t.name,
                arguments: &t.arguments,
            },
        }
    }
}

// ---- The response ----

/// A non-streamed response, as far as it is read. Every field is read leniently (see
/// [`lenient`]): an odd field reads as empty rather than failing the answer.
#[derive(Debug, Default, Deserialize)]
struct Completion {
    #[serde(default, deserialize_with = "lenient::or_default")]
    id: String,
    #[serde(default, deserialize_with = "lenient::items")]
    choices: Vec<Choice>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    usage: CompletionUsage,
}

#[derive(Debug, Default, Deserialize)]
struct Choice {
    /// `None` only when the field is absent.
    #[serde(default, deserialize_with = "lenient::present")]
    message: Option<ResponseMessage>,
}

/// The assistant's message.
#[derive(Debug, Default, Deserialize)]
struct ResponseMessage {
    #[serde(default, deserialize_with = "lenient::or_default")]
    content: Option<String>,
    #[serde(default, deserialize_with = "lenient::items")]
    tool_calls: Vec<ResponseToolCall>,
}

#[derive(Debug, Default, Deserialize)]
struct ResponseToolCall {
    #[serde(default, deserialize_with = "lenient::or_default")]
    id: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    function: ResponseFunction,
}

#[derive(Debug, Default, Deserialize)]
struct ResponseFunction {
    #[serde(default, deserialize_with = "lenient::or_default")]
    name: String,
    /// Normally the JSON text; some servers send the object itself.
    #[serde(default, deserialize_with = "lenient::present")]
    arguments: Option<Value>,
}

impl From<ResponseToolCall> for ToolCall {
    fn from(t: ResponseToolCall) -> Self {
        ToolCall {
            id: t.id,
            name: t.function.name,
            arguments: match t.function.arguments {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => "{}".into(),
            },
        }
    }
}

/// Token counts of a response.
#[derive(Debug, Default, Deserialize)]
struct CompletionUsage {
    #[serde(default, deserialize_with = "lenient::or_default")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    completion_tokens: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Default, Deserialize)]
struct PromptTokensDetails {
    /// Prompt tokens served from the provider's cache.
    #[serde(default, deserialize_with = "lenient::or_default")]
    cached_tokens: u64,
}

impl From<CompletionUsage> for Usage {
    fn from(u: CompletionUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cache_read_tokens: u.prompt_tokens_details.cached_tokens,
            cache_write_tokens: 0,
        }
    }
}

/// A completion we assemble (from stream chunks, or from another provider's answer) in
/// OpenAI's non-streamed shape, for `ChatResponse.raw`.
#[derive(Debug, Serialize)]
pub(super) struct AssembledCompletion<'a, U: Serialize> {
    pub id: &'a str,
    /// Always `"chat.completion"`.
    pub object: &'static str,
    pub model: Option<&'a str>,
    pub choices: [AssembledChoice<'a>; 1],
    pub usage: U,
}

#[derive(Debug, Serialize)]
pub(super) struct AssembledChoice<'a> {
    /// Always 0.
    pub index: u32,
    pub message: AssembledMessage<'a>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(super) struct AssembledMessage<'a> {
    /// Always `"assistant"`.
    pub role: &'static str,
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<FunctionCall<'a>>,
}

impl<'a> AssembledMessage<'a> {
    /// The assistant's message; empty text is `null`.
    pub fn new(content: &'a str, tool_calls: &'a [ToolCall]) -> Self {
        AssembledMessage {
            role: "assistant",
            content: Some(content).filter(|c| !c.is_empty()),
            tool_calls: tool_calls.iter().map(FunctionCall::from).collect(),
        }
    }
}

// ---- Stream chunks ----

/// One `data:` chunk of a streamed answer. (An `error` member is checked first, on the
/// raw JSON, by [`super::stream_error`].)
#[derive(Debug, Default, Deserialize)]
struct StreamChunk {
    #[serde(default, deserialize_with = "lenient::or_default")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    model: Option<String>,
    /// Kept verbatim: it is restated as is in the assembled response.
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default, deserialize_with = "lenient::items")]
    choices: Vec<StreamChoice>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamChoice {
    #[serde(default, deserialize_with = "lenient::or_default")]
    delta: Delta,
}

/// What one chunk adds to the message.
#[derive(Debug, Default, Deserialize)]
struct Delta {
    #[serde(default, deserialize_with = "lenient::or_default")]
    content: Option<String>,
    #[serde(default, deserialize_with = "lenient::items")]
    tool_calls: Vec<DeltaToolCall>,
}

/// A piece of the tool call at `index`: its id and name come once, its arguments in parts.
#[derive(Debug, Default, Deserialize)]
struct DeltaToolCall {
    #[serde(default, deserialize_with = "lenient::or_default")]
    index: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    function: DeltaFunction,
}

#[derive(Debug, Default, Deserialize)]
struct DeltaFunction {
    #[serde(default, deserialize_with = "lenient::or_default")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    arguments: Option<String>,
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

    fn body<'a>(&'a self, request: &'a ChatRequest) -> CompletionRequest<'a> {
        let has_tools = !request.tools.is_empty();
        let stream = self.streams(request);
        CompletionRequest {
            model: &self.name,
            messages: request.messages.iter().map(RequestMessage::from).collect(),
            temperature: self.settings.temperature,
            top_p: self.settings.top_p,
            tools: has_tools.then_some(request.tools.as_slice()),
            tool_choice: has_tools.then_some("auto"),
            max_tokens: self.settings.max_output_tokens,
            stream: stream.then_some(true),
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

impl OpenAiClient {
    /// Whether `request` is asked as a stream: configured so, or someone watches the text.
    fn streams(&self, request: &ChatRequest) -> bool {
        self.settings.stream || request.text_sink.is_some()
    }
}

/// The tool calls of an assistant message in OpenAI's shape.
pub fn tool_calls_of(message: &Value) -> Vec<ToolCall> {
    ResponseMessage::deserialize(message)
        .unwrap_or_default()
        .tool_calls
        .into_iter()
        .map(ToolCall::from)
        .collect()
}

/// Reads a non-streamed response; `v` becomes `raw` unchanged.
fn parse_response(v: Value) -> Result<ChatResponse, LlmError> {
    let completion = Completion::deserialize(&v).unwrap_or_default();
    let message = completion
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message)
        .ok_or_else(|| LlmError::InvalidResponse("no choices[0].message".into()))?;
    Ok(ChatResponse {
        id: completion.id,
        content: message.content.filter(|c| !c.is_empty()),
        tool_calls: message.tool_calls.into_iter().map(ToolCall::from).collect(),
        usage: completion.usage.into(),
        raw: v,
    })
}

/// Accumulates streamed deltas into one response in the non-streamed shape.
#[derive(Default)]
struct StreamState {
    id: String,
    model: String,
    content: String,
    /// The tool calls by index; names and arguments grow with each delta.
    calls: Vec<ToolCall>,
    usage: Option<Value>,
}

impl StreamState {
    /// Calls beyond this index are ignored (a guard against absurd indexes).
    const MAX_CALL_INDEX: u64 = 1024;

    fn push(&mut self, chunk: StreamChunk) {
        if let Some(id) = chunk.id {
            self.id = id;
        }
        if let Some(model) = chunk.model {
            self.model = model;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return;
        };
        if let Some(c) = choice.delta.content {
            self.content.push_str(&c);
        }
        for t in choice.delta.tool_calls {
            if t.index > Self::MAX_CALL_INDEX {
                continue;
            }
            let index = t.index as usize;
            if self.calls.len() <= index {
                self.calls.resize(index + 1, ToolCall::default());
            }
            let call = &mut self.calls[index];
            if let Some(id) = t.id {
                call.id = id;
            }
            if let Some(name) = t.function.name {
                call.name.push_str(&name);
            }
            if let Some(arguments) = t.function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }

    fn finish(self) -> Result<ChatResponse, LlmError> {
        let assembled = AssembledCompletion {
            id: &self.id,
            object: "chat.completion",
            model: Some(&self.model),
            choices: [AssembledChoice {
                index: 0,
                message: AssembledMessage::new(&self.content, &self.calls),
                finish_reason: None,
            }],
            usage: &self.usage,
        };
        let raw = serde_json::to_value(&assembled)
            .map_err(|e| LlmError::InvalidResponse(e.to_string()))?;
        parse_response(raw)
    }
}

/// What one server-sent event means for the answer being streamed.
#[derive(Debug)]
enum Sse {
    /// A JSON chunk to add.
    Chunk(Value),
    /// Not JSON: ignored, as before.
    Skip,
    /// `[DONE]`: the answer is complete.
    Done,
}

/// Reads one event: `[DONE]`, a chunk, or (an `{"error": …}` chunk, or any `event: error`)
/// the error the provider reports mid-stream.
fn read_event(event: &Event) -> Result<Sse, LlmError> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(Sse::Done);
    }
    let chunk = serde_json::from_str::<Value>(data).ok();
    if let Some(e) = chunk.as_ref().and_then(super::stream_error) {
        return Err(e);
    }
    if event.event == "error" {
        return Err(LlmError::from_status(500, data, None));
    }
    Ok(chunk.map_or(Sse::Skip, Sse::Chunk))
}

/// Reads a streamed (`text/event-stream`) answer from `url` into one response.
async fn read_stream<S>(
    body: S,
    url: &str,
    sink: Option<&super::TextSink>,
) -> Result<ChatResponse, LlmError>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>>,
{
    let mut state = StreamState::default();
    let mut events = std::pin::pin!(super::sse::events(body, url, super::sse::LIMITS));
    while let Some(event) = events.next().await {
        let event = event?;
        match read_event(&event)? {
            Sse::Chunk(v) => {
                let chunk = StreamChunk::deserialize(&v).unwrap_or_default();
                if let Some(sink) = sink {
                    let text = chunk
                        .choices
                        .first()
                        .and_then(|c| c.delta.content.as_deref());
                    if let Some(text) = text.filter(|t| !t.is_empty()) {
                        sink.write(text);
                    }
                }
                state.push(chunk)
            }
            Sse::Skip => {}
            Sse::Done => break,
        }
    }
    state.finish()
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
        let res = super::send_json(req, &self.url).await?;
        if self.streams(request) {
            read_stream(res.bytes_stream(), &self.url, request.text_sink.as_ref()).await
        } else {
            parse_response(super::read_json(res).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(stream: bool, max_output_tokens: Option<u64>) -> LlmSettings {
        LlmSettings {
            model: "openai/gpt-4o".into(),
            api_key: None,
            base_url: None,
            timeout: std::time::Duration::from_secs(1),
            temperature: 0.0,
            top_p: 1.0,
            max_output_tokens,
            stream,
        }
    }

    fn conversation() -> ChatRequest {
        ChatRequest {
            messages: vec![
                ChatMessage::System("sys \"quoted\"".into()),
                ChatMessage::User("hi ✓".into()),
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "t1".into(),
                        name: "think".into(),
                        arguments: "{\"thought\":\"x\"}".into(),
                    }],
                },
                ChatMessage::Tool {
                    tool_call_id: "t1".into(),
                    name: "think".into(),
                    content: "ok".into(),
                },
                ChatMessage::Assistant {
                    content: Some("done".into()),
                    tool_calls: vec![],
                },
            ],
            tools: vec![
                json!({"type": "function", "function": {"name": "think", "description": "d", "parameters": {"type": "object"}}}),
            ],
            text_sink: None,
        }
    }

    /// The body as the `json!`-built code before the typed request wrote it.
    fn legacy_body(name: &str, s: &LlmSettings, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| match m {
                ChatMessage::System(c) => json!({"role": "system", "content": c}),
                ChatMessage::User(c) => json!({"role": "user", "content": c}),
                ChatMessage::Assistant { content, tool_calls } => {
                    let mut v = json!({"role": "assistant", "content": content});
                    if !tool_calls.is_empty() {
                        v["tool_calls"] = tool_calls.iter().map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}})).collect();
                    }
                    v
                }
                ChatMessage::Tool { tool_call_id, name, content } => json!({"role": "tool", "tool_call_id": tool_call_id, "name": name, "content": content}),
            })
            .collect();
        let mut body = json!({"model": name, "messages": messages, "temperature": s.temperature, "top_p": s.top_p});
        if !request.tools.is_empty() {
            body["tools"] = Value::Array(request.tools.clone());
            body["tool_choice"] = json!("auto");
        }
        if let Some(max) = s.max_output_tokens {
            body["max_tokens"] = json!(max);
        }
        if s.stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    #[test]
    fn the_request_body_is_byte_for_byte_the_legacy_one() {
        let full = conversation();
        let bare = ChatRequest {
            messages: vec![ChatMessage::User("hi".into())],
            tools: vec![],
            text_sink: None,
        };
        for (s, request) in [
            (settings(true, Some(512)), &full),
            (settings(false, None), &full),
            (settings(false, None), &bare),
            (settings(true, None), &bare),
        ] {
            let c = OpenAiClient::new(
                reqwest::Client::new(),
                "https://x/v1/".into(),
                "gpt-4o".into(),
                s.clone(),
            );
            assert_eq!(
                serde_json::to_vec(&c.body(request)).unwrap(),
                serde_json::to_vec(&legacy_body("gpt-4o", &s, request)).unwrap()
            );
        }
    }

    #[test]
    fn a_response_is_read_and_kept_verbatim_as_raw() {
        let v = json!({
            "id": "r1", "object": "chat.completion", "model": "gpt-4o", "extra": [1],
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "think", "arguments": "{\"t\":1}"}},
                    {"id": "b", "type": "function", "function": {"name": "think", "arguments": {"t": 2}}},
                    {"id": "c", "type": "function", "function": {"name": "think"}}
                ]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "prompt_tokens_details": {"cached_tokens": 4}}
        });
        let r = parse_response(v.clone()).unwrap();
        assert_eq!(r.id, "r1");
        assert_eq!(r.content, None);
        let args: Vec<&str> = r.tool_calls.iter().map(|t| t.arguments.as_str()).collect();
        assert_eq!(args, ["{\"t\":1}", "{\"t\":2}", "{}"]);
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 3,
                cache_read_tokens: 4,
                cache_write_tokens: 0
            }
        );
        assert_eq!(r.raw, v);
        // Odd fields read as empty; only a missing message is an error.
        let odd =
            parse_response(json!({"id": 7, "choices": [{"message": null}], "usage": "x"})).unwrap();
        assert_eq!(
            (odd.id.as_str(), odd.content, odd.usage),
            ("", None, Usage::default())
        );
        assert!(matches!(
            parse_response(json!({"choices": []})),
            Err(LlmError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_response(json!({"choices": [{}]})),
            Err(LlmError::InvalidResponse(_))
        ));
    }

    #[test]
    fn streamed_deltas_assemble_into_one_message() {
        let mut s = StreamState::default();
        for chunk in [
            json!({"id": "c1", "model": "m", "choices": [{"delta": {"content": "Let me "}}]}),
            json!({"id": "c1", "choices": [{"delta": {"content": "look.", "tool_calls": [{"index": 0, "id": "t1", "function": {"name": "execute_bash", "arguments": "{\"comm"}}]}}]}),
            json!({"id": "c1", "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "and\": \"ls\"}"}}]}}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}),
        ] {
            s.push(StreamChunk::deserialize(&chunk).unwrap());
        }
        let r = s.finish().unwrap();
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
        assert_eq!(
            r.raw.to_string(),
            json!({"id": "c1", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "execute_bash", "arguments": "{\"command\": \"ls\"}"}}]}, "finish_reason": null}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).to_string()
        );
        let empty = StreamState::default().finish().unwrap();
        assert_eq!(
            empty.raw.to_string(),
            r#"{"id":"","object":"chat.completion","model":"","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":null}],"usage":null}"#
        );
    }

    /// The response body delivered in these network reads.
    fn body(reads: &[&[u8]]) -> impl Stream<Item = Result<Bytes, reqwest::Error>> {
        let reads: Vec<Result<Bytes, reqwest::Error>> = reads
            .iter()
            .map(|r| Ok(Bytes::copy_from_slice(r)))
            .collect();
        futures::stream::iter(reads)
    }

    #[tokio::test]
    async fn a_stream_split_anywhere_reads_the_same_and_ends_at_done() {
        let whole = "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                     : keep-alive comment\n\n\
                     data:{\"choices\":[{\"delta\":{\"content\":\"lo ✓\"}}]}\r\n\r\n\
                     data: not json\n\n\
                     data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n\
                     data: [DONE]\n\n\
                     data: {\"choices\":[{\"delta\":{\"content\":\" after done\"}}]}\n\n";
        // Every split, including inside `✓`'s UTF-8 bytes.
        for at in 1..whole.len() {
            let (a, b) = whole.as_bytes().split_at(at);
            let r = read_stream(body(&[a, b]), "u", None).await.unwrap();
            assert_eq!(r.content.as_deref(), Some("Hello ✓"), "split at {at}");
            assert_eq!((r.id.as_str(), r.usage.prompt_tokens), ("c1", 3));
        }
    }

    #[tokio::test]
    async fn an_error_mid_stream_is_an_error() {
        let chunk = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        let error =
            "data: {\"error\":{\"type\":\"rate_limit_exceeded\",\"message\":\"slow down\"}}\n\n";
        let (head, tail) = error.as_bytes().split_at(20);
        let r = read_stream(
            body(&[chunk.as_bytes(), head, tail, chunk.as_bytes()]),
            "u",
            None,
        )
        .await;
        assert!(
            matches!(&r, Err(LlmError::RateLimited { message, .. }) if message == "slow down"),
            "{r:?}"
        );
        let named = "event: error\ndata: {\"message\":\"overloaded\"}\n\n";
        let r = read_stream(body(&[chunk.as_bytes(), named.as_bytes()]), "u", None).await;
        assert!(
            matches!(&r, Err(LlmError::Unavailable(500, m)) if m == "overloaded"),
            "{r:?}"
        );
    }
}
