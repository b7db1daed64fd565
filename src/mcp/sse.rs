//! The older HTTP+SSE MCP transport (upstream's `sse_servers`), which rmcp no longer
//! ships: a GET opens an event stream whose first `endpoint` event names the URL that
//! takes the client's messages as POSTs; the server's messages come as `message` events.

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleClient;
use std::pin::Pin;
use std::time::Duration;
use thiserror::Error;

use super::server::McpError;

/// A failed POST of a message.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct SseError(String);

type Events = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// A connected SSE session.
pub struct SseTransport {
    http: reqwest::Client,
    post_url: url::Url,
    api_key: Option<String>,
    events: Events,
}

/// Longest wait for the `endpoint` event.
const ENDPOINT_WAIT: Duration = Duration::from_secs(20);

/// Opens the event stream of `url` and waits for the endpoint to post to.
pub async fn connect(url: &str, api_key: Option<&str>) -> Result<SseTransport, McpError> {
    let base = url::Url::parse(url).map_err(|e| McpError::Connect(format!("bad URL: {e}")))?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| McpError::Connect(e.to_string()))?;
    let mut request = http.get(base.clone()).header("Accept", "text/event-stream");
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| McpError::Connect(format!("cannot open the event stream: {e}")))?;
    if !response.status().is_success() {
        return Err(McpError::Connect(format!(
            "the event stream answered HTTP {}",
            response.status()
        )));
    }
    let mut events: Events = Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|r| r.map_err(|e| e.to_string())),
    );
    let endpoint = tokio::time::timeout(ENDPOINT_WAIT, async {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) if ev.event == "endpoint" => return Ok(ev.data),
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
        Err("the event stream ended before naming its endpoint".to_string())
    })
    .await
    .map_err(|_| McpError::Connect("no `endpoint` event on the stream".into()))?
    .map_err(McpError::Connect)?;
    let post_url = base
        .join(endpoint.trim())
        .map_err(|e| McpError::Connect(format!("bad endpoint {endpoint:?}: {e}")))?;
    if post_url.origin() != base.origin() {
        return Err(McpError::Connect(
            "the server named an endpoint on another origin".into(),
        ));
    }
    Ok(SseTransport {
        http,
        post_url,
        api_key: api_key.map(str::to_string),
        events,
    })
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl std::future::Future<Output = Result<(), SseError>> + Send + 'static {
        let mut request = self.http.post(self.post_url.clone()).json(&item);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.map_err(|e| SseError(e.to_string()))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseError(format!("HTTP {}", response.status())))
            }
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            match self.events.next().await? {
                Ok(ev) if ev.event == "message" || ev.event.is_empty() => {
                    match serde_json::from_str(&ev.data) {
                        Ok(message) => return Some(message),
                        Err(e) => tracing::warn!("unreadable MCP SSE message: {e}"),
                    }
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), SseError>> + Send {
        self.events = Box::pin(futures::stream::empty());
        async { Ok(()) }
    }
}
