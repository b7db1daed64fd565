//! A scripted OpenAI-compatible (and Anthropic) LLM server for tests: it answers each
//! completion request with the next scripted reply and records what it was sent.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted reply.
#[derive(Clone)]
pub enum Reply {
    /// HTTP 200 with this JSON body.
    Json(Value),
    /// An error status with a body and optional Retry-After seconds.
    Status(u16, Value, Option<f64>),
    /// Wait, then the inner reply.
    Delay(Duration, Box<Reply>),
    /// A server-sent-events stream of these chunks (then `[DONE]`).
    Sse(Vec<Value>),
    /// [`Reply::Sse`] written as a model writes: a pause before each chunk.
    #[allow(dead_code)]
    SsePaced(Vec<Value>, Duration),
    /// Anthropic's stream: each event named by its data's `type` (no `[DONE]`), a pause
    /// before each.
    #[allow(dead_code)]
    AnthropicSsePaced(Vec<Value>, Duration),
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    requests: Vec<(HeaderMap, Value)>,
    /// Title requests are answered apart from the script.
    title_requests: Vec<Value>,
    summary_requests: Vec<Value>,
}

/// Whether a request is the agent's "write a title" side request.
fn is_title_request(body: &Value) -> bool {
    let system = body["system"]
        .as_str()
        .or_else(|| body["messages"][0]["content"].as_str())
        .unwrap_or("");
    body.get("tools").is_none() && system.contains("You write titles")
}

/// Whether a request asks for a summary of condensed steps.
fn is_summary_request(body: &Value) -> bool {
    body.get("tools").is_none()
        && body["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .contains("You summarize the earlier steps")
}

/// The running scripted LLM.
pub struct ScriptedLlm {
    pub base_url: String,
    script: Arc<Mutex<Script>>,
}

impl ScriptedLlm {
    pub async fn start(replies: Vec<Reply>) -> ScriptedLlm {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/v1/messages", post(complete_anthropic))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind llm");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve llm") });
        ScriptedLlm {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            script,
        }
    }

    /// Bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.script
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Bodies of the summary requests received so far.
    pub fn summary_requests(&self) -> Vec<Value> {
        self.script.lock().unwrap().summary_requests.clone()
    }

    /// Bodies of the title requests received so far.
    pub fn title_requests(&self) -> Vec<Value> {
        self.script.lock().unwrap().title_requests.clone()
    }

    pub fn headers(&self, i: usize) -> HeaderMap {
        self.script.lock().unwrap().requests[i].0.clone()
    }
}

async fn complete_anthropic(
    state: State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    if is_title_request(&body.0) {
        state.0.lock().unwrap().title_requests.push(body.0);
        return Json(json!({"id": "msg_title", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "Scripted title"}], "usage": {"input_tokens": 1, "output_tokens": 1}})).into_response();
    }
    complete(state, headers, body).await
}

async fn complete(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if is_summary_request(&body) {
        script.lock().unwrap().summary_requests.push(body);
        return Json(json!({"id": "summary", "choices": [{"message": {"role": "assistant", "content": "Scripted summary: thoughts a and b."}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})).into_response();
    }
    if is_title_request(&body) {
        script.lock().unwrap().title_requests.push(body);
        return Json(json!({"id": "title", "choices": [{"message": {"role": "assistant", "content": "Scripted title"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})).into_response();
    }
    let reply = {
        let mut s = script.lock().unwrap();
        s.requests.push((headers, body));
        s.replies.pop_front()
    };
    let Some(mut reply) = reply else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "script exhausted"}})),
        )
            .into_response();
    };
    loop {
        match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::Json(v) => return Json(v).into_response(),
            Reply::Status(code, v, after) => {
                let mut res = (StatusCode::from_u16(code).unwrap(), Json(v)).into_response();
                if let Some(a) = after {
                    res.headers_mut()
                        .insert("retry-after", a.to_string().parse().unwrap());
                }
                return res;
            }
            Reply::Sse(chunks) => {
                let mut body = String::new();
                for c in chunks {
                    body.push_str(&format!("data: {c}\n\n"));
                }
                body.push_str("data: [DONE]\n\n");
                return ([("content-type", "text/event-stream")], body).into_response();
            }
            Reply::SsePaced(chunks, pause) => {
                let mut frames: Vec<String> =
                    chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
                frames.push("data: [DONE]\n\n".into());
                return paced(frames, pause);
            }
            Reply::AnthropicSsePaced(events, pause) => {
                let frames = events
                    .iter()
                    .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
                    .collect();
                return paced(frames, pause);
            }
        }
    }
}

/// A server-sent-events response writing `frames` with a pause before each.
fn paced(frames: Vec<String>, pause: Duration) -> Response {
    let body = futures::stream::unfold(frames.into_iter(), move |mut rest| async move {
        let frame = rest.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(frame), rest))
    });
    (
        [("content-type", "text/event-stream")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// An OpenAI response with tool calls (name, JSON arguments) and optional text.
pub fn tool_calls(content: Option<&str>, calls: &[(&str, Value)]) -> Reply {
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| json!({"id": format!("call_{n}_{i}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
        .collect();
    Reply::Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    }))
}

/// One tool call.
pub fn call(name: &str, args: Value) -> Reply {
    tool_calls(None, &[(name, args)])
}

/// A plain text answer.
pub fn text(content: &str) -> Reply {
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Reply::Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
    }))
}
