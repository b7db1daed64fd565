//! A streamed Messages answer: Anthropic's server-sent events (`message_start`,
//! `content_block_start` / `_delta` / `_stop`, `message_delta`, `message_stop`, `ping`,
//! `error`) assembled into the response the non-streamed path reads, with each piece of
//! text handed to the watcher as it arrives.

use bytes::Bytes;
use eventsource_stream::Event;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::{restate, MessagesResponse, ResponseBlock};
use crate::llm::{lenient, sse, ChatResponse, LlmError, TextSink};

/// Content blocks beyond this index are refused (a guard against absurd indexes).
const MAX_BLOCK_INDEX: u64 = 1024;

// ---- The events, as far as they are read ----

/// `message_start`: the message with its id, model and first usage.
#[derive(Debug, Default, Deserialize)]
struct MessageStart {
    #[serde(default, deserialize_with = "lenient::or_default")]
    message: MessagesResponse,
}

/// `content_block_start`: a block, empty, at `index`.
#[derive(Debug, Default, Deserialize)]
struct BlockStart {
    #[serde(default, deserialize_with = "lenient::or_default")]
    index: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    content_block: ResponseBlock,
}

/// `content_block_delta`: a piece of the block at `index`.
#[derive(Debug, Default, Deserialize)]
struct BlockDelta {
    #[serde(default, deserialize_with = "lenient::or_default")]
    index: u64,
    #[serde(default, deserialize_with = "lenient::or_default")]
    delta: Delta,
}

/// What a delta adds; other kinds (thinking, signatures, citations) are skipped, as the
/// non-streamed path skips their blocks.
#[derive(Debug, Default, Deserialize)]
#[serde(tag = "type")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text {
        #[serde(default, deserialize_with = "lenient::or_default")]
        text: String,
    },
    #[serde(rename = "input_json_delta")]
    InputJson {
        #[serde(default, deserialize_with = "lenient::or_default")]
        partial_json: String,
    },
    #[default]
    #[serde(other)]
    Other,
}

/// `message_delta`: the stop reason and the usage so far.
#[derive(Debug, Default, Deserialize)]
struct MessageDelta {
    #[serde(default, deserialize_with = "lenient::or_default")]
    delta: StopDelta,
    #[serde(default, deserialize_with = "lenient::or_default")]
    usage: UsageDelta,
}

#[derive(Debug, Default, Deserialize)]
struct StopDelta {
    #[serde(default, deserialize_with = "lenient::or_default")]
    stop_reason: Option<String>,
}

/// Cumulative token counts; a count that is present replaces the one before.
#[derive(Debug, Default, Deserialize)]
struct UsageDelta {
    #[serde(default, deserialize_with = "lenient::or_default")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    cache_creation_input_tokens: Option<u64>,
}

/// The `error` object of an `error` event.
#[derive(Debug, Default, Deserialize)]
struct ErrorObject {
    #[serde(default, rename = "type", deserialize_with = "lenient::or_default")]
    kind: String,
}

/// The HTTP status Anthropic documents for an error type, so that an error met mid-stream
/// is the same [`LlmError`] (and as retryable) as the same error answered at once.
fn status_of(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

// ---- Assembly ----

/// A content block being written.
#[derive(Debug)]
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        /// The input `content_block_start` gave (normally `{}`).
        input: Option<Value>,
        /// The input's JSON text as the deltas write it.
        json: String,
    },
    /// A kind the answer does not keep.
    Other,
}

/// The answer so far.
#[derive(Debug, Default)]
struct Assembly {
    message: MessagesResponse,
    /// By index; `None` until the block starts.
    blocks: Vec<Option<Block>>,
    stopped: bool,
}

impl Assembly {
    /// Adds one event; text written is handed to `sink`.
    fn push(&mut self, event: &Event, sink: Option<&TextSink>) -> Result<(), LlmError> {
        let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
            if event.event == "error" {
                return Err(LlmError::from_status(500, &event.data, None));
            }
            return Err(LlmError::InvalidResponse(format!(
                "a streamed event is not JSON: {}",
                clip(&event.data)
            )));
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "message_start" => {
                self.message = MessageStart::deserialize(&v).unwrap_or_default().message;
            }
            "content_block_start" => {
                let start = BlockStart::deserialize(&v).unwrap_or_default();
                let block = match start.content_block {
                    ResponseBlock::Text { text } => Block::Text(text),
                    ResponseBlock::ToolUse { id, name, input } => Block::ToolUse {
                        id,
                        name,
                        input,
                        json: String::new(),
                    },
                    ResponseBlock::Other => Block::Other,
                };
                let slot = self.slot(start.index)?;
                *slot = Some(block);
            }
            "content_block_delta" => {
                let delta = BlockDelta::deserialize(&v).unwrap_or_default();
                let index = delta.index;
                let block = self.slot(index)?.as_mut().ok_or_else(|| {
                    LlmError::InvalidResponse(format!(
                        "a delta for content block {index}, which was not started"
                    ))
                })?;
                match (block, delta.delta) {
                    (Block::Text(text), Delta::Text { text: piece }) => {
                        if let Some(sink) = sink.filter(|_| !piece.is_empty()) {
                            sink.write(&piece);
                        }
                        text.push_str(&piece);
                    }
                    (Block::ToolUse { json, .. }, Delta::InputJson { partial_json }) => {
                        json.push_str(&partial_json)
                    }
                    (Block::Other, _) | (_, Delta::Other) => {}
                    (_, _) => {
                        return Err(LlmError::InvalidResponse(format!(
                            "a delta of another kind than content block {index}"
                        )))
                    }
                }
            }
            "message_delta" => {
                let delta = MessageDelta::deserialize(&v).unwrap_or_default();
                if delta.delta.stop_reason.is_some() {
                    self.message.stop_reason = delta.delta.stop_reason;
                }
                let (u, d) = (&mut self.message.usage, delta.usage);
                u.input_tokens = d.input_tokens.unwrap_or(u.input_tokens);
                u.output_tokens = d.output_tokens.unwrap_or(u.output_tokens);
                u.cache_read_input_tokens = d
                    .cache_read_input_tokens
                    .unwrap_or(u.cache_read_input_tokens);
                u.cache_creation_input_tokens = d
                    .cache_creation_input_tokens
                    .unwrap_or(u.cache_creation_input_tokens);
            }
            "message_stop" => self.stopped = true,
            "error" => {
                let error = v
                    .get("error")
                    .map(|e| ErrorObject::deserialize(e).unwrap_or_default())
                    .unwrap_or_default();
                return Err(LlmError::from_status(
                    status_of(&error.kind),
                    &event.data,
                    None,
                ));
            }
            // `content_block_stop`, `ping`, and kinds added later.
            _ => {}
        }
        Ok(())
    }

    /// The place of the block at `index`.
    fn slot(&mut self, index: u64) -> Result<&mut Option<Block>, LlmError> {
        if index > MAX_BLOCK_INDEX {
            return Err(LlmError::InvalidResponse(format!(
                "content block index {index} is out of range"
            )));
        }
        let i = index as usize;
        if self.blocks.len() <= i {
            self.blocks.resize_with(i + 1, || None);
        }
        Ok(&mut self.blocks[i])
    }

    /// The whole answer, as the non-streamed path reads it.
    fn finish(mut self) -> Result<ChatResponse, LlmError> {
        if !self.stopped {
            return Err(LlmError::InvalidResponse(
                "the streamed answer ended before its message_stop".into(),
            ));
        }
        let mut content = Vec::with_capacity(self.blocks.len());
        for block in self.blocks.into_iter().flatten() {
            content.push(match block {
                Block::Text(text) => ResponseBlock::Text { text },
                Block::ToolUse {
                    id,
                    name,
                    input,
                    json,
                } => {
                    let input = if json.trim().is_empty() {
                        input
                    } else {
                        Some(serde_json::from_str(&json).map_err(|e| {
                            LlmError::InvalidResponse(format!(
                                "the input of tool call {id} is not JSON: {e}"
                            ))
                        })?)
                    };
                    ResponseBlock::ToolUse { id, name, input }
                }
                Block::Other => ResponseBlock::Other,
            });
        }
        self.message.content = Some(content);
        restate(self.message)
    }
}

/// The start of `data` for an error message.
fn clip(data: &str) -> String {
    let mut s: String = data.chars().take(200).collect();
    if s.len() < data.len() {
        s.push('…');
    }
    s
}

/// Reads a streamed Messages answer from `url` (within `limits`) into one
/// response; the text is handed to `sink` as it is written.
pub(super) async fn read<S>(
    body: S,
    url: &str,
    sink: Option<&TextSink>,
    limits: sse::Limits,
) -> Result<ChatResponse, LlmError>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>>,
{
    let mut answer = Assembly::default();
    let mut events = std::pin::pin!(sse::events(body, url, limits));
    while let Some(event) = events.next().await {
        answer.push(&event?, sink)?;
        if answer.stopped {
            break;
        }
    }
    answer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::anthropic::parse_response;
    use crate::llm::{AnthropicClient, ChatMessage, ChatRequest, LlmClient, LlmSettings};
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    /// One SSE frame as Anthropic writes it: the event's name, then its data.
    fn frame(data: &Value) -> String {
        format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap()
        )
    }

    /// `s` in pieces of `n` characters.
    fn pieces(s: &str, n: usize) -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        chars.chunks(n).map(|c| c.iter().collect()).collect()
    }

    /// The frames of a streamed answer equal to the non-streamed `answer`: text in words,
    /// tool inputs (pretty-printed) in pieces of `n` characters.
    fn frames_of(answer: &Value, n: usize) -> Vec<String> {
        let usage = &answer["usage"];
        let mut message = answer.clone();
        message["content"] = json!([]);
        message["stop_reason"] = Value::Null;
        message["usage"] = json!({"input_tokens": usage["input_tokens"], "output_tokens": 1,
            "cache_read_input_tokens": usage["cache_read_input_tokens"],
            "cache_creation_input_tokens": usage["cache_creation_input_tokens"]});
        let mut out = vec![
            frame(&json!({"type": "message_start", "message": message})),
            frame(&json!({"type": "ping"})),
        ];
        for (index, block) in answer["content"].as_array().unwrap().iter().enumerate() {
            match block["type"].as_str().unwrap() {
                "text" => {
                    out.push(frame(&json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                    for word in block["text"].as_str().unwrap().split_inclusive(' ') {
                        out.push(frame(&json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": word}})));
                    }
                }
                _ => {
                    out.push(frame(&json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})));
                    let json = serde_json::to_string_pretty(&block["input"]).unwrap();
                    for piece in pieces(&json, n) {
                        out.push(frame(&json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
                    }
                }
            }
            out.push(frame(
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
        out.push(frame(&json!({"type": "message_delta", "delta": {"stop_reason": answer["stop_reason"], "stop_sequence": null}, "usage": {"output_tokens": usage["output_tokens"]}})));
        out.push(frame(&json!({"type": "message_stop"})));
        out
    }

    /// A non-streamed answer: text and two tool calls.
    fn answer() -> Value {
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "text", "text": "Let me look at the file ✓ first."},
                {"type": "tool_use", "id": "toolu_1", "name": "execute_bash", "input": {"command": "ls -la \"/w s\"", "security_risk": "LOW"}},
                {"type": "tool_use", "id": "toolu_2", "name": "str_replace_editor", "input": {"command": "view", "path": "/w/a ✓.txt", "view_range": [1, 20], "nested": {"k": null, "b": true}}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 120, "output_tokens": 41, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3}
        })
    }

    /// A sink that keeps what it is handed.
    fn recorder() -> (TextSink, Arc<Mutex<Vec<String>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = got.clone();
        let sink = TextSink::new(move |t| keep.lock().unwrap().push(t.to_string()));
        (sink, got)
    }

    /// The response body delivered in reads of `n` bytes.
    fn body(text: &str, n: usize) -> impl Stream<Item = Result<Bytes, reqwest::Error>> {
        let reads: Vec<Result<Bytes, reqwest::Error>> = text
            .as_bytes()
            .chunks(n)
            .map(|r| Ok(Bytes::copy_from_slice(r)))
            .collect();
        futures::stream::iter(reads)
    }

    async fn read_text(text: &str, sink: Option<&TextSink>) -> Result<ChatResponse, LlmError> {
        read(body(text, 7), "u", sink, sse::LIMITS).await
    }

    fn assert_same(a: &ChatResponse, b: &ChatResponse) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.content, b.content);
        assert_eq!(a.tool_calls, b.tool_calls);
        assert_eq!(a.usage, b.usage);
        assert_eq!(a.raw.to_string(), b.raw.to_string());
    }

    #[tokio::test]
    async fn a_streamed_answer_assembles_into_the_non_streamed_one_with_its_text_handed_on_in_order(
    ) {
        let whole = parse_response(answer()).unwrap();
        let frames = frames_of(&answer(), 3);
        let input_deltas = frames.iter().filter(|f| f.contains("input_json_delta"));
        assert!(input_deltas.count() > 40, "arguments in many pieces");
        let (sink, got) = recorder();
        let streamed = read_text(&frames.concat(), Some(&sink)).await.unwrap();
        assert_same(&streamed, &whole);
        assert_eq!(
            streamed.tool_calls[1].arguments,
            r#"{"command":"view","path":"/w/a ✓.txt","view_range":[1,20],"nested":{"k":null,"b":true}}"#
        );
        assert_eq!(
            streamed.usage,
            crate::llm::Usage {
                prompt_tokens: 120,
                completion_tokens: 41,
                cache_read_tokens: 7,
                cache_write_tokens: 3
            }
        );
        assert_eq!(
            *got.lock().unwrap(),
            ["Let ", "me ", "look ", "at ", "the ", "file ", "✓ ", "first."]
        );
        // Without a sink, and with the events' names left out, the same answer.
        let unnamed: String = frames
            .iter()
            .map(|f| f.split_once('\n').unwrap().1)
            .collect();
        assert_same(&read_text(&unnamed, None).await.unwrap(), &whole);
    }

    #[tokio::test]
    async fn tool_calls_without_input_deltas_keep_the_input_they_started_with() {
        let frames = [
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 2}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "finish", "input": {}}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
            json!({"type": "message_stop"}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "after the end"}}),
        ];
        let text: String = frames.iter().map(frame).collect();
        let (sink, got) = recorder();
        let r = read_text(&text, Some(&sink)).await.unwrap();
        assert_eq!(r.content, None);
        assert_eq!(r.tool_calls[0].arguments, "{}");
        assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (2, 5));
        assert!(got.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_error_event_mid_stream_is_the_error_its_status_would_be() {
        let start = frames_of(&answer(), 5)[..4].concat();
        for (kind, status) in [
            ("overloaded_error", 529),
            ("rate_limit_error", 429),
            ("invalid_request_error", 400),
            ("api_error", 500),
            ("something_new", 500),
        ] {
            let error =
                json!({"type": "error", "error": {"type": kind, "message": "prompt is too long"}});
            let text = format!("{start}{}", frame(&error));
            let (sink, got) = recorder();
            let e = read_text(&text, Some(&sink)).await.unwrap_err();
            let at_once = LlmError::from_status(status, &error.to_string(), None);
            assert_eq!(e.to_string(), at_once.to_string(), "{kind}");
            assert_eq!(e.retryable(), at_once.retryable(), "{kind}");
            assert_eq!(*got.lock().unwrap(), ["Let "], "text before the error");
        }
        let overloaded = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        let e = read_text(&format!("{start}{}", frame(&overloaded)), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, LlmError::Unavailable(529, m) if m == "Overloaded") && e.retryable(),
            "{e:?}"
        );
        let prose = read_text("event: error\ndata: upstream went away\n\n", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&prose, LlmError::Unavailable(500, m) if m == "upstream went away"),
            "{prose:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_without_message_stop_is_an_error() {
        let frames = frames_of(&answer(), 4);
        let cut_before_stop = frames[..frames.len() - 1].concat();
        let cut_mid_event = {
            let whole = frames.concat();
            whole[..whole.len() - 10].to_string()
        };
        for text in [cut_before_stop, cut_mid_event, String::new()] {
            let e = read_text(&text, None).await.unwrap_err();
            assert!(
                matches!(&e, LlmError::InvalidResponse(m) if m.contains("message_stop")),
                "{e:?}"
            );
        }
    }

    #[tokio::test]
    async fn hostile_streams_are_clear_errors_not_panics() {
        let start = frames_of(&answer(), 5)[..3].concat();
        let stop = frame(&json!({"type": "message_stop"}));
        let cases = [
            (
                "data: {\"type\": \"content_block_delta\", \"ind\n\n".to_string(),
                "not JSON",
            ),
            (
                frame(
                    &json!({"type": "content_block_start", "index": u64::MAX, "content_block": {"type": "text"}}),
                ),
                "out of range",
            ),
            (
                frame(
                    &json!({"type": "content_block_delta", "index": 9, "delta": {"type": "text_delta", "text": "x"}}),
                ),
                "not started",
            ),
            (
                frame(
                    &json!({"type": "content_block_delta", "index": "0", "delta": {"type": "text_delta", "text": "x"}}),
                ),
                "",
            ),
            (
                frame(
                    &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
                ),
                "another kind",
            ),
            (
                format!(
                    "{}{}",
                    frame(
                        &json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t9", "name": "x", "input": {}}})
                    ),
                    frame(
                        &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\": tru"}})
                    )
                ),
                "input of tool call t9 is not JSON",
            ),
        ];
        for (bad, says) in cases {
            let e = read_text(&format!("{start}{bad}{stop}"), None).await;
            match (&e, says) {
                // An index of another type reads as 0: the text block, which is fine.
                (Ok(r), "") => assert_eq!(r.content.as_deref(), Some("x")),
                (Err(LlmError::InvalidResponse(m)), _) if !says.is_empty() => {
                    assert!(m.contains(says), "{m:?} should say {says:?}")
                }
                _ => panic!("{bad:?} gave {e:?}"),
            }
        }
        // A huge delta (one line, never ended) is refused at the line bound, and many
        // deltas at the bound of the whole answer.
        let delta = |text: &str| {
            frame(
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            )
        };
        let huge = delta(&"x".repeat(sse::LIMITS.line));
        let many = delta(&"y".repeat(1000)).repeat(sse::LIMITS.total / 1000);
        for (text, says) in [(huge, "a line of"), (many, "answer is longer than")] {
            let (sink, got) = recorder();
            let stream = body(&format!("{start}{text}{stop}"), 16 << 10);
            match read(stream, "u", Some(&sink), sse::LIMITS).await {
                Err(LlmError::InvalidResponse(m)) => assert!(m.contains(says), "{m}"),
                Err(e) => panic!("{e}"),
                Ok(r) => panic!("read {} bytes of text", r.content.map_or(0, |c| c.len())),
            }
            let got = got.lock().unwrap();
            assert!(got.iter().all(|t| t.len() == 1000), "only whole deltas");
        }
    }

    /// An Anthropic-shaped server on a local port: a JSON answer, or the same answer as a
    /// stream when the request asks for one. Returns its base URL and the bodies it got.
    async fn serve(answer: Value) -> (String, Arc<Mutex<Vec<Value>>>) {
        use axum::routing::post;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        let app = axum::Router::new().route(
            "/v1/messages",
            post(move |axum::Json(req): axum::Json<Value>| {
                let answer = answer.clone();
                let keep = keep.clone();
                async move {
                    let streamed = req["stream"] == true;
                    keep.lock().unwrap().push(req);
                    if streamed {
                        let frames = frames_of(&answer, 2)
                            .into_iter()
                            .map(Ok::<_, std::io::Error>);
                        let body = axum::body::Body::from_stream(futures::stream::iter(frames));
                        axum::response::IntoResponse::into_response((
                            [("content-type", "text/event-stream")],
                            body,
                        ))
                    } else {
                        axum::response::IntoResponse::into_response(axum::Json(answer))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://127.0.0.1:{port}"), seen)
    }

    fn settings(stream: bool) -> LlmSettings {
        LlmSettings {
            model: "anthropic/claude-x".into(),
            api_key: Some("k".into()),
            base_url: None,
            timeout: std::time::Duration::from_secs(10),
            temperature: 0.0,
            top_p: 1.0,
            max_output_tokens: None,
            stream,
        }
    }

    #[tokio::test]
    async fn a_watched_request_streams_and_an_unwatched_one_is_read_whole() {
        let (base, seen) = serve(answer()).await;
        let http = reqwest::Client::new();
        let unwatched = ChatRequest {
            messages: vec![ChatMessage::User("hi".into())],
            tools: vec![],
            text_sink: None,
        };
        let (sink, got) = recorder();
        let watched = ChatRequest {
            text_sink: Some(sink),
            ..unwatched.clone()
        };
        let client = AnthropicClient::new(
            http.clone(),
            base.clone(),
            "claude-x".into(),
            settings(false),
        );
        let whole = client.complete(&unwatched).await.unwrap();
        let streamed = client.complete(&watched).await.unwrap();
        let configured = AnthropicClient::new(http, base, "claude-x".into(), settings(true))
            .complete(&unwatched)
            .await
            .unwrap();
        assert_same(&whole, &parse_response(answer()).unwrap());
        assert_same(&streamed, &whole);
        assert_same(&configured, &whole);
        assert_eq!(
            got.lock().unwrap().concat(),
            "Let me look at the file ✓ first."
        );
        let seen = seen.lock().unwrap();
        let stream_flags: Vec<&Value> = seen.iter().map(|r| &r["stream"]).collect();
        assert_eq!(stream_flags, [&Value::Null, &json!(true), &json!(true)]);
    }
}
