//! The controller: the agent state machine and its step loop (docs/protocol.md, "Agent states").

use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::history::History;
use super::tools::{self, PlannedAction};
use super::{prompt, AgentHost, Appended};
use crate::config::LlmConfig;
use crate::events::{
    Action, AgentState, ChangeAgentStateArgs, ConfirmationState, EmptyExtras, Event, EventSource,
    MessageArgs, Notice, NoticeKind, Observation, ObservationKind, Payload, SystemArgs, TaskItem,
    TaskTrackingExtras,
};
use crate::llm::{self, ChatRequest, ChatResponse, LlmError, LlmSettings, RetryEvent, RetryPolicy};

/// Server-level agent settings (the user's settings may override some per turn).
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub llm: LlmConfig,
    pub max_iterations: u64,
    pub max_budget_per_task: Option<f64>,
    pub confirmation_mode: bool,
    pub workspace: String,
}

/// The message when no LLM is configured.
const NO_LLM: &str = "No LLM is configured. Choose a model (and API key) in Settings, or start the server with LLM_MODEL, LLM_API_KEY and LLM_BASE_URL (or [llm] in config.toml).";

/// One tool call of the current response, waiting its turn.
enum Planned {
    Act {
        planned: Box<PlannedAction>,
        tcm: Value,
    },
    Invalid {
        error: String,
        tcm: Value,
    },
}

/// Token and cost totals, reported as `llm_metrics` on agent actions.
#[derive(Default)]
struct Metrics {
    cost: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    per_turn: u64,
    response_id: String,
    model: String,
}

impl Metrics {
    fn to_value(&self, max_budget: Option<f64>) -> Value {
        json!({
            "accumulated_cost": self.cost,
            "max_budget_per_task": max_budget,
            "accumulated_token_usage": {
                "model": self.model,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "context_window": 0,
                "per_turn_token": self.per_turn,
                "response_id": self.response_id,
            },
            "costs": [],
            "response_latencies": [],
            "token_usages": [],
        })
    }
}

/// The settings of the current turn.
struct Turn {
    llm: LlmSettings,
    retry: RetryPolicy,
    max_iterations: u64,
    max_budget: Option<f64>,
    confirmation_mode: bool,
    costs: (Option<f64>, Option<f64>),
}

struct Controller {
    host: Arc<dyn AgentHost>,
    options: AgentOptions,
    history: History,
    state: Option<AgentState>,
    /// The reason given with the last state (errors).
    reason: String,
    queue: VecDeque<Planned>,
    pending_observation: Option<u64>,
    awaiting_confirmation: Option<Event>,
    llm: Option<JoinHandle<Result<ChatResponse, LlmError>>>,
    retries: mpsc::UnboundedSender<RetryEvent>,
    iterations: u64,
    metrics: Metrics,
    system_sent: bool,
    tasks: Vec<TaskItem>,
    turn: Option<Turn>,
    /// (action, observation) signatures of recent steps, for stuck detection.
    recent: Vec<(String, String)>,
    /// The agent's plain-text answers since its last tool call (monologue detection).
    monologue: Vec<String>,
    last_action: Option<(u64, String)>,
    inbox: tokio::sync::OwnedMutexGuard<mpsc::UnboundedReceiver<Appended>>,
    /// Whether the conversation already has a user message (and so its title).
    titled: bool,
    /// Events taken from the inbox early (to complete the history) and not yet handled.
    backlog: VecDeque<Appended>,
}

fn setting_str(s: &Map<String, Value>, key: &str) -> Option<String> {
    s.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|v| !v.is_empty())
}

/// Runs the agent of one conversation until its inbox closes.
pub async fn run(
    host: Arc<dyn AgentHost>,
    options: AgentOptions,
    inbox: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Appended>>>,
) {
    // Held for this run only: if the run panics, the guard is released and a restarted
    // agent reads the same inbox.
    let inbox = inbox.lock_owned().await;
    let (retries, mut retry_rx) = mpsc::unbounded_channel();
    let mut c = Controller {
        host,
        options,
        history: History::default(),
        state: None,
        reason: String::new(),
        queue: VecDeque::new(),
        pending_observation: None,
        awaiting_confirmation: None,
        llm: None,
        retries,
        iterations: 0,
        metrics: Metrics::default(),
        system_sent: false,
        tasks: Vec::new(),
        turn: None,
        recent: Vec::new(),
        monologue: Vec::new(),
        last_action: None,
        inbox,
        titled: false,
        backlog: VecDeque::new(),
    };
    c.restore().await;
    c.announce_ready().await;
    loop {
        if let Some(a) = c.backlog.pop_front() {
            c.on_event(a).await;
            continue;
        }
        // Events drive the state machine; a finished LLM call continues the step;
        // retry reports become status updates while a call is being retried.
        tokio::select! {
            ev = c.inbox.recv() => match ev {
                Some(a) => c.on_event(a).await,
                None => break,
            },
            result = llm_done(&mut c.llm), if c.llm.is_some() => {
                c.llm = None;
                c.on_llm(result).await;
            }
            Some(ev) = retry_rx.recv() => c.on_retry(ev).await,
        }
    }
    if let Some(h) = c.llm.take() {
        h.abort();
    }
    c.host.set_busy(false);
}

async fn llm_done(
    h: &mut Option<JoinHandle<Result<ChatResponse, LlmError>>>,
) -> Result<ChatResponse, LlmError> {
    match h {
        Some(handle) => match handle.await {
            Ok(r) => r,
            Err(e) => Err(LlmError::InvalidResponse(format!(
                "the LLM call failed: {e}"
            ))),
        },
        None => std::future::pending().await,
    }
}

impl Controller {
    fn max_chars(&self) -> usize {
        self.options.llm.max_message_chars
    }

    /// Rebuilds the history (and the last state) from the stored events.
    async fn restore(&mut self) {
        let max = self.max_chars();
        for a in self.host.stored_events().await {
            self.history.push(a.id, a.source, &a.event, max);
            match &a.event.payload {
                Payload::Action(Action::System(_)) => self.system_sent = true,
                Payload::Action(Action::Message(_)) if a.source == EventSource::User => {
                    self.titled = true
                }
                Payload::Action(Action::TaskTracking(t)) if t.command == "plan" => {
                    self.tasks = t.task_list.clone()
                }
                Payload::Observation(o) => {
                    if let ObservationKind::AgentStateChanged(s) = &o.kind {
                        self.state = serde_json::from_value(json!(s.agent_state)).ok();
                        self.reason = s.reason.clone();
                    }
                }
                _ => {}
            }
        }
        // The conversation's task stored `loading` as it opened; a run cut short by a
        // restart does not resume by itself.
        self.state = Some(AgentState::Loading);
        self.reason.clear();
    }

    /// Announces that the agent is ready, as upstream does at every start: a
    /// `change_agent_state` action from the environment, then the new state. The UI keeps
    /// its input disabled until it sees it.
    async fn announce_ready(&mut self) {
        let ready = Action::ChangeAgentState(ChangeAgentStateArgs {
            agent_state: AgentState::AwaitingUserInput.as_str().into(),
            thought: String::new(),
        });
        self.append(Event::action(ready), EventSource::Environment, false)
            .await;
        self.set_state(AgentState::AwaitingUserInput, "").await;
    }

    async fn append(
        &mut self,
        mut event: Event,
        source: EventSource,
        metrics: bool,
    ) -> Option<u64> {
        if metrics {
            event.llm_metrics = Some(
                self.metrics
                    .to_value(self.turn.as_ref().and_then(|t| t.max_budget)),
            );
        }
        self.host.append(event, source).await
    }

    async fn set_state(&mut self, state: AgentState, reason: &str) {
        if self.state == Some(state) && self.reason == reason {
            return;
        }
        self.state = Some(state);
        self.reason = reason.to_string();
        self.host.set_busy(matches!(
            state,
            AgentState::Running | AgentState::RateLimited | AgentState::UserConfirmed
        ));
        let obs = Observation::agent_state_changed(state, reason);
        self.append(
            Event::observation(obs, None),
            EventSource::Environment,
            false,
        )
        .await;
    }

    fn notify_status(&self, kind: NoticeKind, id: &str, message: &str) {
        self.host
            .notify(Notice::status(kind, id, message).to_json());
    }

    async fn on_event(&mut self, a: Appended) {
        let max = self.max_chars();
        self.history.push(a.id, a.source, &a.event, max);
        match &a.event.payload {
            Payload::Action(Action::Message(m)) if a.source == EventSource::User => {
                let text = m.content.clone();
                self.on_user_message(&text).await
            }
            Payload::Action(Action::ChangeAgentState(s)) if a.source == EventSource::User => {
                let state = s.agent_state.clone();
                self.on_change_state(&state).await
            }
            Payload::Observation(o)
                if a.event.cause.is_some() && a.event.cause == self.pending_observation =>
            {
                self.pending_observation = None;
                if let Some((_, sig)) = self.last_action.take() {
                    self.recent
                        .push((sig, format!("{}:{}", o.kind(), o.content)));
                    if self.recent.len() > 8 {
                        self.recent.remove(0);
                    }
                }
                self.advance().await;
            }
            _ => {}
        }
    }

    /// Reads the user's settings for this turn; None (and an error state) without an LLM.
    async fn load_turn(&mut self) -> bool {
        let s = self.host.settings().await;
        if let Some(why) = crate::settings::key_mismatch(&s) {
            self.notify_status(NoticeKind::Error, "STATUS$ERROR_LLM_AUTHENTICATION", &why);
            self.set_state(AgentState::Error, &why).await;
            return false;
        }
        let llm = &self.options.llm;
        let Some(model) = setting_str(&s, "llm_model")
            .or_else(|| llm.model.clone())
            .filter(|m| !m.is_empty())
        else {
            self.notify_status(NoticeKind::Error, "STATUS$ERROR_LLM_NOT_CONFIGURED", NO_LLM);
            self.set_state(AgentState::Error, NO_LLM).await;
            return false;
        };
        self.turn = Some(Turn {
            llm: LlmSettings {
                model,
                api_key: setting_str(&s, "llm_api_key").or_else(|| llm.api_key.clone()),
                base_url: setting_str(&s, "llm_base_url").or_else(|| llm.base_url.clone()),
                timeout: Duration::from_secs_f64(llm.timeout.unwrap_or(300.0).clamp(1.0, 3600.0)),
                temperature: llm.temperature,
                top_p: llm.top_p,
                max_output_tokens: llm.max_output_tokens,
                stream: llm.stream,
            },
            retry: RetryPolicy {
                num_retries: llm.num_retries,
                min_wait: Duration::from_secs_f64(llm.retry_min_wait.clamp(0.0, 3600.0)),
                max_wait: Duration::from_secs_f64(llm.retry_max_wait.clamp(0.0, 3600.0)),
                multiplier: llm.retry_multiplier,
            },
            max_iterations: s
                .get("max_iterations")
                .and_then(Value::as_u64)
                .filter(|m| *m > 0)
                .unwrap_or(self.options.max_iterations),
            max_budget: s
                .get("max_budget_per_task")
                .and_then(Value::as_f64)
                .or(self.options.max_budget_per_task),
            confirmation_mode: s
                .get("confirmation_mode")
                .and_then(Value::as_bool)
                .unwrap_or(self.options.confirmation_mode),
            costs: (llm.input_cost_per_token, llm.output_cost_per_token),
        });
        true
    }

    async fn on_user_message(&mut self, text: &str) {
        self.iterations = 0;
        self.recent.clear();
        if !self.load_turn().await {
            return;
        }
        if !self.titled {
            self.titled = true;
            self.generate_title(text);
        }
        if self.awaiting_confirmation.is_some() {
            // The buttons are still up; the message is in the history for later.
            return;
        }
        self.set_state(AgentState::Running, "").await;
        self.advance().await;
    }

    async fn on_change_state(&mut self, requested: &str) {
        match AgentState::parse(requested) {
            Some(AgentState::Stopped) => {
                if let Some(h) = self.llm.take() {
                    h.abort();
                }
                self.queue.clear();
                self.pending_observation = None;
                self.awaiting_confirmation = None;
                self.set_state(AgentState::Stopped, "").await;
            }
            Some(AgentState::Paused) => {
                if let Some(h) = self.llm.take() {
                    h.abort();
                }
                self.set_state(AgentState::Paused, "").await;
            }
            Some(AgentState::Running) if self.state != Some(AgentState::Running) => {
                self.resume().await
            }
            Some(AgentState::UserConfirmed) => {
                if let Some(mut event) = self.awaiting_confirmation.take() {
                    set_confirmation(&mut event, ConfirmationState::Confirmed);
                    self.set_state(AgentState::Running, "").await;
                    let sig = signature(&event);
                    if let Some(id) = self.append(event, EventSource::Agent, true).await {
                        self.pending_observation = Some(id);
                        self.last_action = Some((id, sig));
                    }
                }
            }
            Some(AgentState::UserRejected) => {
                if let Some(mut event) = self.awaiting_confirmation.take() {
                    set_confirmation(&mut event, ConfirmationState::Rejected);
                    let tcm = event.tool_call_metadata.clone();
                    if let Some(id) = self.append(event, EventSource::Agent, true).await {
                        let mut obs = Event::observation(
                            Observation {
                                content: "Action has been rejected by the user! Waiting for further user input.".into(),
                                kind: ObservationKind::UserRejected(EmptyExtras::default()),
                            },
                            Some(id),
                        );
                        obs.tool_call_metadata = tcm;
                        self.append(obs, EventSource::Environment, false).await;
                    }
                    self.queue.clear();
                    self.set_state(AgentState::AwaitingUserInput, "").await;
                }
            }
            _ => {}
        }
    }

    /// Asks the model for a short title in the background; it replaces the fallback title
    /// unless the user renamed the conversation meanwhile.
    fn generate_title(&self, text: &str) {
        let Some(turn) = self.turn.as_ref() else {
            return;
        };
        let mut settings = turn.llm.clone();
        settings.stream = false;
        settings.timeout = settings.timeout.min(Duration::from_secs(30));
        let host = self.host.clone();
        let fallback = super::fallback_title(text);
        let request = ChatRequest {
            messages: vec![
                llm::ChatMessage::System("You write titles for conversations between a user and a coding agent. Answer with the title only: at most six words, no quotes, no final period.".into()),
                llm::ChatMessage::User(super::truncate_middle(text, 2000)),
            ],
            tools: Vec::new(),
        };
        tokio::spawn(async move {
            let Ok(client) = llm::client(&settings) else {
                return;
            };
            let Ok(response) = client.complete(&request).await else {
                return;
            };
            let title: String = response
                .content
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\'', '.'])
                .chars()
                .take(80)
                .collect();
            if !title.is_empty() {
                host.retitle(title, fallback).await;
            }
        });
    }

    /// Resumes after a pause (or a stop) with the current history.
    async fn resume(&mut self) {
        if self.turn.is_some() || self.load_turn().await {
            self.set_state(AgentState::Running, "").await;
            self.advance().await;
        }
    }

    /// Works through queued tool calls, then asks the model for the next step.
    async fn advance(&mut self) {
        while self.state == Some(AgentState::Running)
            && self.llm.is_none()
            && self.pending_observation.is_none()
            && self.awaiting_confirmation.is_none()
        {
            match self.queue.pop_front() {
                Some(item) => self.execute(item).await,
                None => {
                    self.step().await;
                    return;
                }
            }
        }
    }

    /// Carries out one planned tool call.
    async fn execute(&mut self, item: Planned) {
        let (planned, tcm) = match item {
            Planned::Invalid { error, tcm } => {
                let mut obs = Event::observation(Observation::error(error, ""), None);
                obs.tool_call_metadata = Some(tcm);
                self.append(obs, EventSource::Agent, false).await;
                return;
            }
            Planned::Act { planned, tcm } => (planned, tcm),
        };
        let mut event = Event::action(planned.action.clone());
        event.timeout = planned.timeout;
        event.tool_call_metadata = Some(tcm.clone());
        match planned.action {
            Action::Think(_) => {
                if let Some(id) = self.append(event, EventSource::Agent, true).await {
                    let mut obs = Event::observation(
                        Observation {
                            content: "Your thought has been logged.".into(),
                            kind: ObservationKind::Think(EmptyExtras::default()),
                        },
                        Some(id),
                    );
                    obs.tool_call_metadata = Some(tcm);
                    self.append(obs, EventSource::Agent, false).await;
                }
            }
            Action::Finish(_) => {
                self.append(event, EventSource::Agent, true).await;
                self.queue.clear();
                self.set_state(AgentState::Finished, "").await;
            }
            Action::TaskTracking(t) => {
                if t.command == "plan" {
                    self.tasks = t.task_list.clone();
                }
                let content = render_tasks(&self.tasks, &t.command);
                if let Some(id) = self.append(event, EventSource::Agent, true).await {
                    let mut obs = Event::observation(
                        Observation {
                            content,
                            kind: ObservationKind::TaskTracking(TaskTrackingExtras {
                                command: t.command.clone(),
                                task_list: self.tasks.clone(),
                            }),
                        },
                        Some(id),
                    );
                    obs.tool_call_metadata = Some(tcm);
                    self.append(obs, EventSource::Agent, false).await;
                }
            }
            action => {
                if self.needs_confirmation(&action) {
                    // The state goes first, as upstream: the UI shows the Confirm and
                    // Reject buttons when the awaiting action arrives in that state.
                    set_confirmation(&mut event, ConfirmationState::AwaitingConfirmation);
                    self.awaiting_confirmation = Some(event.clone());
                    self.set_state(AgentState::AwaitingUserConfirmation, "")
                        .await;
                    self.append(event, EventSource::Agent, true).await;
                    return;
                }
                let sig = signature(&event);
                if let Some(id) = self.append(event, EventSource::Agent, true).await {
                    self.pending_observation = Some(id);
                    self.last_action = Some((id, sig));
                }
            }
        }
    }

    fn needs_confirmation(&self, action: &Action) -> bool {
        if !self.turn.as_ref().is_some_and(|t| t.confirmation_mode) {
            return false;
        }
        // Commands carry `confirmation_state` on the wire, which clients act on.
        let risk = match action {
            Action::Run(a) => a.security_risk,
            Action::RunIpython(a) => a.security_risk,
            _ => return false,
        };
        risk == 2 || risk == -1
    }

    /// Asks the model for the next step.
    async fn step(&mut self) {
        let Some(turn) = self.turn.as_ref() else {
            return;
        };
        let (settings, policy, max_iterations, max_budget) = (
            turn.llm.clone(),
            turn.retry,
            turn.max_iterations,
            turn.max_budget,
        );
        if self.iterations >= max_iterations {
            let reason = format!(
                "RuntimeError: Agent reached maximum iteration. Current iteration: {}, max iteration: {}",
                self.iterations, max_iterations
            );
            self.notify_status(NoticeKind::Error, "STATUS$ERROR", &format!("Agent reached maximum iteration ({max_iterations}). Send a message to continue."));
            self.set_state(AgentState::Error, &reason).await;
            return;
        }
        if let Some(budget) = max_budget.filter(|b| self.metrics.cost >= *b) {
            let reason = format!("RuntimeError: Agent reached maximum budget for conversation. Current budget: {:.2}, max budget: {budget:.2}", self.metrics.cost);
            self.set_state(AgentState::Error, &reason).await;
            return;
        }
        if self.stuck() {
            self.set_state(
                AgentState::Error,
                "AgentStuckInLoopError: Agent got stuck in a loop",
            )
            .await;
            return;
        }
        if !self.system_sent {
            self.system_sent = true;
            let system = Action::System(SystemArgs {
                content: self.system_prompt(),
                tools: Some(Value::Array(tools::definitions())),
                openhands_version: Some(env!("CARGO_PKG_VERSION").into()),
                agent_class: Some("CodeActAgent".into()),
            });
            self.append(Event::action(system), EventSource::Agent, false)
                .await;
        }
        // Our own appends (and anything else already queued) belong in this request.
        while let Ok(a) = self.inbox.try_recv() {
            let max = self.max_chars();
            self.history.push(a.id, a.source, &a.event, max);
            self.backlog.push_back(a);
        }
        let request = ChatRequest {
            messages: self.history.messages(&self.system_prompt()),
            tools: tools::definitions(),
        };
        let retries = self.retries.clone();
        self.iterations += 1;
        self.llm = Some(tokio::spawn(async move {
            let client = llm::client(&settings)?;
            llm::with_retries(client.as_ref(), &request, policy, |ev| {
                let _ = retries.send(ev.clone());
            })
            .await
        }));
    }

    fn system_prompt(&self) -> String {
        let date = chrono::Local::now().format("%Y-%m-%d").to_string();
        prompt::system_prompt(&self.options.workspace, &date)
    }

    /// The same action and observation four times in a row, the same action failing
    /// three times, or two steps alternating three times (docs/protocol.md, "Agent states").
    fn stuck(&self) -> bool {
        let n = self.recent.len();
        if n >= 4 && self.recent[n - 4..].windows(2).all(|w| w[0] == w[1]) {
            return true;
        }
        if n >= 6 {
            let r = &self.recent[n - 6..];
            if r[0] == r[2] && r[2] == r[4] && r[1] == r[3] && r[3] == r[5] && r[0] != r[1] {
                return true;
            }
        }
        n >= 3
            && self.recent[n - 3..].windows(2).all(|w| w[0].0 == w[1].0)
            && self.recent[n - 3..]
                .iter()
                .all(|(_, o)| o.starts_with("error:"))
    }

    async fn on_retry(&mut self, ev: RetryEvent) {
        if self.llm.is_none() {
            return;
        }
        self.notify_status(
            NoticeKind::Info,
            "STATUS$LLM_RETRY",
            &format!("Retrying LLM request, {} / {}", ev.attempt, ev.max),
        );
        if matches!(ev.error, LlmError::RateLimited { .. }) {
            self.set_state(AgentState::RateLimited, "").await;
        }
    }

    async fn on_llm(&mut self, result: Result<ChatResponse, LlmError>) {
        if !matches!(
            self.state,
            Some(AgentState::Running | AgentState::RateLimited)
        ) {
            return;
        }
        let response = match result {
            Ok(r) => r,
            Err(e) if e.is_context_length() && self.condense().await => {
                self.iterations = self.iterations.saturating_sub(1);
                self.step().await;
                return;
            }
            Err(e) => {
                self.notify_status(NoticeKind::Error, e.status_id(), &e.to_string());
                self.set_state(AgentState::Error, &e.to_string()).await;
                return;
            }
        };
        if self.state == Some(AgentState::RateLimited) {
            self.set_state(AgentState::Running, "").await;
        }
        self.account(&response);
        if response.tool_calls.is_empty() {
            let text = response.content.clone().unwrap_or_default();
            self.monologue.push(text.clone());
            let n = self.monologue.len();
            if n >= 3 && self.monologue[n - 3..].iter().all(|m| *m == text) {
                // The same answer three times without doing anything: a loop.
                self.monologue.clear();
                self.set_state(
                    AgentState::Error,
                    "AgentStuckInLoopError: Agent got stuck in a loop",
                )
                .await;
                return;
            }
            let mut args = MessageArgs::text(text);
            args.wait_for_response = true;
            self.append(
                Event::action(Action::Message(args)),
                EventSource::Agent,
                true,
            )
            .await;
            self.set_state(AgentState::AwaitingUserInput, "").await;
            return;
        }
        self.monologue.clear();
        let total = response.tool_calls.len();
        for (i, call) in response.tool_calls.iter().enumerate() {
            let tcm = json!({
                "function_name": call.name,
                "tool_call_id": call.id,
                "model_response": response.raw,
                "total_calls_in_response": total,
            });
            let item = match tools::to_action(&call.name, &call.arguments) {
                Ok(mut planned) => {
                    if i == 0 {
                        if let Some(text) = &response.content {
                            set_thought(&mut planned.action, text);
                        }
                    }
                    Planned::Act {
                        planned: Box::new(planned),
                        tcm,
                    }
                }
                Err(e) => Planned::Invalid {
                    error: e.to_string(),
                    tcm,
                },
            };
            self.queue.push_back(item);
        }
        self.advance().await;
    }

    /// Forgets the older half of the history (recorded as a `condensation` action).
    async fn condense(&mut self) -> bool {
        let Some((start, end)) = self.history.condensation_range() else {
            return false;
        };
        self.notify_status(
            NoticeKind::Info,
            "STATUS$CONDENSING",
            "The conversation is longer than the model's context: condensing older steps.",
        );
        let event = Event::action(Action::Condensation(crate::events::CondensationArgs {
            forgotten_event_ids: None,
            forgotten_events_start_id: Some(start),
            forgotten_events_end_id: Some(end),
            summary: None,
            summary_offset: None,
        }));
        let copy = event.clone();
        match self.append(event, EventSource::Agent, false).await {
            Some(id) => {
                let max = self.max_chars();
                self.history.push(id, EventSource::Agent, &copy, max);
                true
            }
            None => false,
        }
    }

    fn account(&mut self, r: &ChatResponse) {
        let m = &mut self.metrics;
        m.prompt_tokens += r.usage.prompt_tokens;
        m.completion_tokens += r.usage.completion_tokens;
        m.cache_read_tokens += r.usage.cache_read_tokens;
        m.cache_write_tokens += r.usage.cache_write_tokens;
        m.per_turn = r.usage.prompt_tokens + r.usage.completion_tokens;
        m.response_id = r.id.clone();
        if let Some(turn) = &self.turn {
            m.model = turn.llm.model.clone();
            // Configured prices win; else the list price of a well-known model; else 0.
            let listed = llm::pricing::price(&turn.llm.model).unwrap_or((0.0, 0.0));
            let (input, output) = (
                turn.costs.0.unwrap_or(listed.0),
                turn.costs.1.unwrap_or(listed.1),
            );
            m.cost +=
                r.usage.prompt_tokens as f64 * input + r.usage.completion_tokens as f64 * output;
        }
    }
}

fn set_confirmation(event: &mut Event, state: ConfirmationState) {
    if let Payload::Action(a) = &mut event.payload {
        match a {
            Action::Run(r) => r.confirmation_state = state,
            Action::RunIpython(r) => r.confirmation_state = state,
            _ => {}
        }
    }
}

fn set_thought(action: &mut Action, text: &str) {
    match action {
        Action::Run(a) => a.thought = text.to_string(),
        Action::Read(a) => a.thought = text.to_string(),
        Action::Edit(a) => a.thought = text.to_string(),
        Action::Browse(a) => a.thought = text.to_string(),
        Action::Finish(a) => a.thought = text.to_string(),
        Action::TaskTracking(a) => a.thought = text.to_string(),
        Action::Think(a) if a.thought.is_empty() => a.thought = text.to_string(),
        _ => {}
    }
}

fn signature(event: &Event) -> String {
    match &event.payload {
        Payload::Action(a) => serde_json::to_string(a).unwrap_or_default(),
        Payload::Observation(o) => o.content.clone(),
    }
}

fn render_tasks(tasks: &[TaskItem], command: &str) -> String {
    if tasks.is_empty() {
        return "No tasks in the list. Use the plan command to create one.".into();
    }
    let mut out = if command == "plan" {
        format!("Task list has been updated with {} items.\n", tasks.len())
    } else {
        String::from("Current task list:\n")
    };
    for (i, t) in tasks.iter().enumerate() {
        let mark = match t.status.as_str() {
            "done" => "[x]",
            "in_progress" => "[~]",
            _ => "[ ]",
        };
        out.push_str(&format!("{}. {mark} {}", i + 1, t.title));
        if !t.notes.is_empty() {
            out.push_str(&format!(" ({})", t.notes));
        }
        out.push('\n');
    }
    out
}
