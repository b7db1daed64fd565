//! Operator metrics: one registry of `openhands_*` metrics, rendered at `GET /metrics`
//! in the Prometheus text format or OpenMetrics (see docs/observability.md).
//!
//! Counters and histograms are updated where things happen; the handles on hot paths
//! are resolved once here (no label lookup per event). Gauges that describe the
//! server's current state (open conversations, sockets by transport, processes) are
//! set when the metrics are scraped, so keeping them costs nothing in between.

mod metered_llm;
mod processes;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

pub use metered_llm::{metered, Prices};
pub use processes::descendant_processes;

/// The `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of the Prometheus text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Distinct model names kept as label values; later ones are counted as `other`, so a
/// client that keeps changing its model name cannot grow the metrics without bound.
const MAX_MODELS: usize = 32;
/// Longest model name kept as a label value.
const MAX_MODEL_LABEL: usize = 100;

/// How a client is connected.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

/// Replay (catching up from the store) or live delivery.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

/// The server's metrics: held once (in an `Arc`) and shared by every layer.
pub struct Metrics {
    registry: Registry,
    conversations_open: Gauge,
    conversations_running: Gauge,
    clients_websocket: Gauge,
    clients_polling: Gauge,
    clients_raw_ws: Gauge,
    runtime_processes: Gauge,
    events_stored: Counter,
    replay_bytes: Counter,
    live_bytes: Counter,
    delivery_latency: Histogram,
    store_commit: Histogram,
    llm_requests: Family<ModelLabel, Counter>,
    llm_errors: Family<ModelLabel, Counter>,
    llm_tokens: Family<TokenLabel, Counter>,
    llm_cost: Family<ModelLabel, Counter<f64, AtomicU64>>,
    llm_latency: Family<ModelLabel, Histogram>,
    commands: Family<ActionLabel, Histogram>,
    models: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Which exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, else the Prometheus text format.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// What the server looks like right now, set into the gauges at each scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    pub conversations_open: usize,
    pub conversations_running: usize,
    pub clients_websocket: usize,
    pub clients_polling: usize,
    pub runtime_processes: usize,
}

fn seconds_histogram() -> Histogram {
    // 50 µs … about 105 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("openhands");
        let conversations_open = Gauge::default();
        registry.register(
            "conversations_open",
            "Conversations open (loaded, with their task running)",
            conversations_open.clone(),
        );
        let conversations_running = Gauge::default();
        registry.register(
            "conversations_running",
            "Open conversations whose agent is working or whose actions are running",
            conversations_running.clone(),
        );
        let clients = Family::<TransportLabel, Gauge>::default();
        registry.register(
            "clients_connected",
            "Connected clients by transport (Socket.IO websocket or polling, raw /ws)",
            clients.clone(),
        );
        let runtime_processes = Gauge::default();
        registry.register(
            "runtime_processes",
            "Processes started by conversations' runtimes that are alive",
            runtime_processes.clone(),
        );
        let events_stored = Counter::default();
        registry.register(
            "events_stored",
            "Events committed to the store",
            events_stored.clone(),
        );
        let bytes = Family::<PhaseLabel, Counter>::default();
        registry.register_with_unit(
            "event_sent",
            "Bytes of events sent to clients, by replay (from the store) or live",
            Unit::Bytes,
            bytes.clone(),
        );
        let delivery_latency = seconds_histogram();
        registry.register_with_unit(
            "delivery_latency",
            "Time from an event being durable to its frame written to a client's socket",
            Unit::Seconds,
            delivery_latency.clone(),
        );
        let store_commit = seconds_histogram();
        registry.register_with_unit(
            "store_commit",
            "Time of one group commit of the store (transaction and fsync)",
            Unit::Seconds,
            store_commit.clone(),
        );
        let llm_requests = Family::<ModelLabel, Counter>::default();
        registry.register(
            "llm_requests",
            "LLM completion requests, by model",
            llm_requests.clone(),
        );
        let llm_errors = Family::<ModelLabel, Counter>::default();
        registry.register(
            "llm_errors",
            "LLM completion requests that failed, by model",
            llm_errors.clone(),
        );
        let llm_tokens = Family::<TokenLabel, Counter>::default();
        registry.register(
            "llm_tokens",
            "Tokens used by LLM requests, by model and kind (prompt, completion)",
            llm_tokens.clone(),
        );
        let llm_cost = Family::<ModelLabel, Counter<f64, AtomicU64>>::default();
        registry.register(
            "llm_cost_usd",
            "Cost of LLM requests in US dollars, by model (configured or list prices)",
            llm_cost.clone(),
        );
        let llm_latency =
            Family::<ModelLabel, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        registry.register_with_unit(
            "llm_request_duration",
            "Time of one LLM completion request, by model",
            Unit::Seconds,
            llm_latency.clone(),
        );
        let commands =
            Family::<ActionLabel, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        registry.register_with_unit(
            "command_duration",
            "Time the runtime took to carry out an action, by action (run, read, edit, ...); its _count is the number of actions run",
            Unit::Seconds,
            commands.clone(),
        );
        let transport = |t| {
            clients
                .get_or_create(&TransportLabel { transport: t })
                .clone()
        };
        let phase = |p| bytes.get_or_create(&PhaseLabel { phase: p }).clone();
        Metrics {
            conversations_open,
            conversations_running,
            clients_websocket: transport("websocket"),
            clients_polling: transport("polling"),
            clients_raw_ws: transport("raw_ws"),
            runtime_processes,
            events_stored,
            replay_bytes: phase("replay"),
            live_bytes: phase("live"),
            delivery_latency,
            store_commit,
            llm_requests,
            llm_errors,
            llm_tokens,
            llm_cost,
            llm_latency,
            commands,
            models: Mutex::new(Vec::new()),
            registry,
        }
    }

    /// One group commit of the store: how long it took and how many events it made durable.
    pub fn store_committed(&self, took: Duration, events: usize) {
        self.store_commit.observe(took.as_secs_f64());
        self.events_stored.inc_by(events as u64);
    }

    /// An event's bytes sent to a client while catching up from the store.
    pub fn replay_sent(&self, bytes: usize) {
        self.replay_bytes.inc_by(bytes as u64);
    }

    /// An event's bytes sent to a client from the live feed.
    pub fn live_sent(&self, bytes: usize) {
        self.live_bytes.inc_by(bytes as u64);
    }

    /// A live event reached a client's socket `waited` after it became durable.
    pub fn delivered(&self, waited: Duration) {
        self.delivery_latency.observe(waited.as_secs_f64());
    }

    /// A raw `/ws` client connected; the guard counts it until dropped.
    pub fn raw_ws_client(self: &std::sync::Arc<Self>) -> RawWsClient {
        self.clients_raw_ws.inc();
        RawWsClient(self.clone())
    }

    /// The runtime carried out `action` in `took`.
    pub fn command_ran(&self, action: &'static str, took: Duration) {
        self.commands
            .get_or_create(&ActionLabel { action })
            .observe(took.as_secs_f64());
    }

    /// The label value for `model`: itself (shortened) while few models are known,
    /// `other` past [`MAX_MODELS`].
    fn model_label(&self, model: &str) -> String {
        let model: String = model.chars().take(MAX_MODEL_LABEL).collect();
        let Ok(mut known) = self.models.lock() else {
            return "other".into();
        };
        if known.contains(&model) {
            return model;
        }
        if known.len() >= MAX_MODELS {
            return "other".into();
        }
        known.push(model.clone());
        model
    }

    /// One LLM request to `model` ended after `took`: its usage and cost, or an error.
    pub fn llm_request(&self, model: &str, took: Duration, outcome: LlmOutcome) {
        let label = ModelLabel {
            model: self.model_label(model),
        };
        self.llm_requests.get_or_create(&label).inc();
        self.llm_latency
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        match outcome {
            LlmOutcome::Failed => {
                self.llm_errors.get_or_create(&label).inc();
            }
            LlmOutcome::Answered {
                prompt_tokens,
                completion_tokens,
                cost,
            } => {
                for (kind, n) in [("prompt", prompt_tokens), ("completion", completion_tokens)] {
                    self.llm_tokens
                        .get_or_create(&TokenLabel {
                            model: label.model.clone(),
                            kind,
                        })
                        .inc_by(n);
                }
                if cost.is_finite() && cost > 0.0 {
                    self.llm_cost.get_or_create(&label).inc_by(cost);
                }
            }
        }
    }

    /// The metrics as text in `format`, with the gauges set from `now`.
    pub fn render(&self, now: Snapshot, format: Format) -> String {
        let set = |g: &Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.conversations_open, now.conversations_open);
        set(&self.conversations_running, now.conversations_running);
        set(&self.clients_websocket, now.clients_websocket);
        set(&self.clients_polling, now.clients_polling);
        set(&self.runtime_processes, now.runtime_processes);
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        out
    }
}

/// How an LLM request ended, for [`Metrics::llm_request`].
#[derive(Debug, Clone, Copy)]
pub enum LlmOutcome {
    Answered {
        prompt_tokens: u64,
        completion_tokens: u64,
        cost: f64,
    },
    Failed,
}

/// Counts one raw `/ws` client while it lives.
pub struct RawWsClient(std::sync::Arc<Metrics>);

impl Drop for RawWsClient {
    fn drop(&mut self) {
        self.0.clients_raw_ws.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_prefixed_and_counters_end_in_total() {
        let m = Metrics::new();
        m.store_committed(Duration::from_millis(2), 3);
        m.llm_request(
            "openai/x",
            Duration::from_millis(5),
            LlmOutcome::Answered {
                prompt_tokens: 10,
                completion_tokens: 2,
                cost: 0.5,
            },
        );
        let text = m.render(Snapshot::default(), Format::Prometheus);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("openhands_"), "{line}");
        }
        assert!(text.contains("openhands_events_stored_total 3"), "{text}");
        assert!(text.contains("openhands_llm_tokens_total{model=\"openai/x\",kind=\"prompt\"} 10"));
        let om = m.render(Snapshot::default(), Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn model_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..(MAX_MODELS + 10) {
            m.llm_request(&format!("m{i}"), Duration::ZERO, LlmOutcome::Failed);
        }
        m.llm_request(&"x".repeat(10_000), Duration::ZERO, LlmOutcome::Failed);
        let text = m.render(Snapshot::default(), Format::Prometheus);
        let series = text
            .lines()
            .filter(|l| l.starts_with("openhands_llm_errors_total{"))
            .count();
        assert_eq!(series, MAX_MODELS + 1, "{text}");
        assert!(text.contains("openhands_llm_errors_total{model=\"other\"} 11"));
        assert!(text.lines().all(|l| l.len() < 1000));
    }
}
