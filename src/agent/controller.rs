//! The controller: the agent state machine and its step loop (docs/protocol.md, "Agent states").

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::history::History;
use super::metrics::Metrics;
use super::stuck::{self, StuckDetector, STUCK_REASON};
use super::tasks::TaskList;
use super::tools::{self, PlannedAction};
use super::turn::Turn;
use super::{condense, prompt, title, AgentHost, AgentOptions, Appended};
use crate::events::{
    Action, AgentState, ChangeAgentStateArgs, ConfirmationState, EmptyExtras, Event, EventSource,
    MessageArgs, Notice, NoticeKind, Observation, ObservationKind, Payload, SystemArgs,
};
use crate::llm::{self, ChatRequest, ChatResponse, LlmError, RetryEvent};

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

/// What the controller waits for before it can take its next step.
enum Waiting {
    /// Nothing: the next queued tool call runs, or the model is asked for the next step.
    Nothing,
    /// The answer of the LLM call in flight.
    Llm(JoinHandle<Result<ChatResponse, LlmError>>),
    /// The observation of action `id`; `signature` is the action's, for stuck detection.
    Observation { id: u64, signature: String },
    /// The user's confirm or reject of this action (stored awaiting confirmation).
    Confirmation(Box<Event>),
}

impl Waiting {
    /// Cancels the LLM call in flight, if that is what the controller waits for.
    fn abort_llm(&mut self) {
        if let Waiting::Llm(call) = self {
            call.abort();
            *self = Waiting::Nothing;
        }
    }

    /// Whether an observation caused by `cause` is the one waited for.
    fn is_observation_of(&self, cause: Option<u64>) -> bool {
        matches!(self, Waiting::Observation { id, .. } if cause == Some(*id))
    }
}

struct Controller {
    host: Arc<dyn AgentHost>,
    options: AgentOptions,
    history: History,
    state: Option<AgentState>,
    /// The reason given with the last state (errors).
    reason: String,
    /// The tool calls of the current response not carried out yet.
    queue: VecDeque<Planned>,
    waiting: Waiting,
    retries: mpsc::UnboundedSender<RetryEvent>,
    iterations: u64,
    metrics: Metrics,
    system_sent: bool,
    tasks: TaskList,
    turn: Option<Turn>,
    stuck: StuckDetector,
    inbox: tokio::sync::OwnedMutexGuard<mpsc::UnboundedReceiver<Appended>>,
    /// Whether the conversation already has a user message (and so its title).
    titled: bool,
    /// Events taken from the inbox early (to complete the history) and not yet handled.
    backlog: VecDeque<Appended>,
    /// The MCP tools' definitions, offered after the built-in ones.
    mcp_tools: Vec<Value>,
    /// Their names.
    mcp_names: std::collections::HashSet<String>,
    /// The user asked for a condensation (`condensation_request`): done at the next step.
    condense_requested: bool,
    /// The id of the last event the model call in flight (or the last one) was made with.
    asked_through: u64,
    /// The id of the newest user message handled.
    newest_user_message: u64,
    /// After a stop, until when the next step waits for the interrupted action's
    /// observation (which tells the model it was cut short).
    stop_grace: Option<tokio::time::Instant>,
    /// The stored history ends in a run (the last state before this opening was
    /// `running`): a cluster takeover notice resumes it.
    interrupted: bool,
}

/// How long the next step waits, after a stop, for the interrupted action to report.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

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
        waiting: Waiting::Nothing,
        retries,
        iterations: 0,
        metrics: Metrics::default(),
        system_sent: false,
        tasks: TaskList::default(),
        turn: None,
        stuck: StuckDetector::default(),
        inbox,
        titled: false,
        backlog: VecDeque::new(),
        mcp_tools: Vec::new(),
        mcp_names: Default::default(),
        condense_requested: false,
        asked_through: 0,
        newest_user_message: 0,
        stop_grace: None,
        interrupted: false,
    };
    c.restore().await;
    let host = c.host.clone();
    let builtin = tools::names(&c.builtin_tools());
    let (workspace, mcp_tools) = tokio::join!(host.setup_workspace(), host.start_tools(builtin));
    c.set_mcp_tools(mcp_tools);
    match workspace {
        Ok(()) => c.announce_ready().await,
        // The conversation still works (a message starts the agent); the reason says
        // what went wrong.
        Err(why) => c.set_state(AgentState::Error, &why).await,
    }
    loop {
        if let Some(a) = c.backlog.pop_front() {
            c.on_event(a).await;
            continue;
        }
        // Events drive the state machine; a finished LLM call continues the step;
        // retry reports become status updates while a call is being retried; after a
        // stop, the grace for the interrupted action's report ends the wait for it.
        tokio::select! {
            ev = c.inbox.recv() => match ev {
                Some(a) => c.on_event(a).await,
                None => break,
            },
            result = llm_done(&mut c.waiting), if matches!(c.waiting, Waiting::Llm(_)) => {
                c.waiting = Waiting::Nothing;
                c.on_llm(result).await;
            }
            Some(ev) = retry_rx.recv() => c.on_retry(ev).await,
            _ = sleep_until(c.stop_grace), if c.stop_grace.is_some() => c.end_stop_grace().await,
        }
    }
    c.waiting.abort_llm();
    c.host.set_busy(false);
}

/// The notice a node stores when it takes the conversation over from one that died.
fn is_takeover_notice(o: &crate::events::Observation) -> bool {
    matches!(&o.kind, ObservationKind::Error(e) if e.error_id == crate::cluster::TAKEOVER_ERROR_ID)
}

/// Sleeps until `deadline` (never resolves without one).
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The answer of the LLM call waited for (never resolves when there is none).
async fn llm_done(waiting: &mut Waiting) -> Result<ChatResponse, LlmError> {
    match waiting {
        Waiting::Llm(call) => match call.await {
            Ok(r) => r,
            Err(e) => Err(LlmError::InvalidResponse(format!(
                "the LLM call failed: {e}"
            ))),
        },
        _ => std::future::pending().await,
    }
}

impl Controller {
    fn set_mcp_tools(&mut self, definitions: Vec<Value>) {
        self.mcp_names = definitions
            .iter()
            .filter_map(|d| d.pointer("/function/name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        self.mcp_tools = definitions;
    }

    /// The built-in tools and the MCP servers' tools.
    /// The built-in tools (with the browser when it is on), then the MCP servers' tools.
    fn tools(&self) -> Vec<Value> {
        let mut all = self.builtin_tools();
        all.extend(self.mcp_tools.iter().cloned());
        all
    }

    fn max_chars(&self) -> usize {
        self.options.llm.max_message_chars
    }

    /// Rebuilds the history (and the last state) from the stored events.
    async fn restore(&mut self) {
        let max = self.max_chars();
        for a in self.host.stored_events().await {
            self.history.push(a.id, a.source, &a.event, max);
            if let Some(m) = &a.event.llm_metrics {
                // Totals (and so the budget) go on from where they were.
                self.metrics.restore(m);
            }
            match &a.event.payload {
                Payload::Action(Action::System(_)) => self.system_sent = true,
                Payload::Action(Action::Message(_)) if a.source == EventSource::User => {
                    self.titled = true
                }
                Payload::Action(Action::TaskTracking(t)) => self.tasks.restore(t),
                Payload::Observation(o) => {
                    if let ObservationKind::AgentStateChanged(s) = &o.kind {
                        self.state = serde_json::from_value(json!(s.agent_state)).ok();
                        self.reason = s.reason.clone();
                        if self.state != Some(AgentState::Loading) {
                            self.interrupted = self.state == Some(AgentState::Running);
                        }
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

    /// Appends an event, with the metrics so far when `metrics` (agent actions).
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

    /// Appends an agent action, then (once it has an id) the observation it caused,
    /// with the action's tool-call metadata: for actions the agent carries out itself.
    async fn append_with_observation(
        &mut self,
        action: Event,
        observation: Observation,
        source: EventSource,
    ) {
        let tcm = action.tool_call_metadata.clone();
        if let Some(id) = self.append(action, EventSource::Agent, true).await {
            let mut obs = Event::observation(observation, Some(id));
            obs.tool_call_metadata = tcm;
            self.append(obs, source, false).await;
        }
    }

    /// Appends an agent action for the runtime and waits for its observation.
    async fn append_and_await(&mut self, action: Event) {
        let signature = stuck::signature(&action);
        if let Some(id) = self.append(action, EventSource::Agent, true).await {
            self.waiting = Waiting::Observation { id, signature };
        }
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
                self.newest_user_message = a.id;
                self.on_user_message(&text).await
            }
            Payload::Action(Action::ChangeAgentState(s)) if a.source == EventSource::User => {
                let state = s.agent_state.clone();
                self.on_change_state(&state).await
            }
            Payload::Action(Action::CondensationRequest(_)) if a.source == EventSource::User => {
                self.on_condensation_request().await
            }
            Payload::Observation(o)
                if is_takeover_notice(o) && a.source == EventSource::Environment =>
            {
                self.on_takeover().await
            }
            Payload::Observation(o) if self.waiting.is_observation_of(a.event.cause) => {
                self.stop_grace = None;
                if let Waiting::Observation { signature, .. } =
                    std::mem::replace(&mut self.waiting, Waiting::Nothing)
                {
                    self.stuck.record_step(signature, o);
                }
                self.advance().await;
            }
            _ => {}
        }
    }

    /// Reads the user's settings for this turn; false (and an error state) when the
    /// LLM cannot be used.
    async fn load_turn(&mut self) -> bool {
        let settings = self.host.settings().await;
        match Turn::from_settings(&settings, &self.options) {
            Ok(turn) => {
                self.turn = Some(turn);
                true
            }
            Err(e) => {
                self.notify_status(NoticeKind::Error, e.status_id, &e.message);
                self.set_state(AgentState::Error, &e.message).await;
                false
            }
        }
    }

    async fn on_user_message(&mut self, text: &str) {
        self.iterations = 0;
        self.stuck.new_task();
        if !self.load_turn().await {
            return;
        }
        self.recall(text, !self.titled).await;
        if !self.titled {
            self.titled = true;
            if let Some(turn) = &self.turn {
                title::spawn(
                    self.host.clone(),
                    &self.options.llm_factory,
                    &turn.llm,
                    text,
                );
            }
        }
        if matches!(self.waiting, Waiting::Confirmation(_)) {
            // The buttons are still up; the message is in the history for later.
            return;
        }
        self.take_at_next_step(self.newest_user_message);
        self.set_state(AgentState::Running, "").await;
        self.advance().await;
    }

    /// A user's `condensation_request`: condensed at the agent's next step, or at once
    /// when the agent is idle.
    async fn on_condensation_request(&mut self) {
        self.condense_requested = true;
        let idle = matches!(self.waiting, Waiting::Nothing)
            && !matches!(
                self.state,
                Some(AgentState::Running | AgentState::RateLimited)
            );
        if idle && self.load_turn().await {
            self.condense_requested = false;
            if !self.condense().await {
                self.notify_status(
                    NoticeKind::Info,
                    "STATUS$CONDENSING",
                    "There is too little history to condense yet.",
                );
            }
        }
    }

    /// Stores what the workspace's microagents add for this message: a `recall` action
    /// (from the user's side) and its observation, which the history gives the model.
    async fn recall(&mut self, text: &str, first: bool) {
        let Some(extras) = self.host.recall(text, first).await else {
            return;
        };
        let action = Action::Recall(crate::events::RecallArgs {
            recall_type: extras.recall_type.clone(),
            query: text.to_string(),
            thought: String::new(),
        });
        let Some(id) = self
            .append(Event::action(action), EventSource::User, false)
            .await
        else {
            return;
        };
        let content = if first {
            "Added workspace context"
        } else {
            "Added microagent knowledge"
        };
        let obs = Observation {
            content: content.into(),
            kind: ObservationKind::Recall(Box::new(extras)),
        };
        self.append(
            Event::observation(obs, Some(id)),
            EventSource::Environment,
            false,
        )
        .await;
    }

    async fn on_change_state(&mut self, requested: &str) {
        match AgentState::parse(requested) {
            Some(AgentState::Stopped) => {
                self.waiting.abort_llm();
                // The running action's processes are being killed; its observation (which
                // tells the model it was interrupted) comes before the next step.
                if matches!(self.waiting, Waiting::Observation { .. }) {
                    self.stop_grace = Some(tokio::time::Instant::now() + STOP_GRACE);
                } else {
                    self.waiting = Waiting::Nothing;
                }
                self.queue.clear();
                self.set_state(AgentState::Stopped, "").await;
            }
            Some(AgentState::Paused) => {
                self.waiting.abort_llm();
                self.set_state(AgentState::Paused, "").await;
            }
            Some(AgentState::Running) if self.state != Some(AgentState::Running) => {
                self.resume().await
            }
            Some(AgentState::UserConfirmed) => {
                if let Some(mut event) = self.take_confirmation() {
                    set_confirmation(&mut event, ConfirmationState::Confirmed);
                    self.set_state(AgentState::Running, "").await;
                    self.append_and_await(event).await;
                }
            }
            Some(AgentState::UserRejected) => {
                if let Some(mut event) = self.take_confirmation() {
                    set_confirmation(&mut event, ConfirmationState::Rejected);
                    let rejected = Observation {
                        content:
                            "Action has been rejected by the user! Waiting for further user input."
                                .into(),
                        kind: ObservationKind::UserRejected(EmptyExtras::default()),
                    };
                    self.append_with_observation(event, rejected, EventSource::Environment)
                        .await;
                    self.queue.clear();
                    self.set_state(AgentState::AwaitingUserInput, "").await;
                }
            }
            _ => {}
        }
    }

    /// The action awaiting confirmation, if that is what the controller waits for (it
    /// then waits for nothing).
    fn take_confirmation(&mut self) -> Option<Event> {
        match std::mem::replace(&mut self.waiting, Waiting::Nothing) {
            Waiting::Confirmation(event) => Some(*event),
            other => {
                self.waiting = other;
                None
            }
        }
    }

    /// Another node took the conversation over from one that died: a run it cut short
    /// goes on (the model reads the notice), unless a user message already waits, which
    /// starts the next step itself.
    async fn on_takeover(&mut self) {
        if !std::mem::take(&mut self.interrupted) {
            return;
        }
        while let Ok(a) = self.inbox.try_recv() {
            self.backlog.push_back(a);
        }
        let message_waits = self.backlog.iter().any(|a| {
            a.source == EventSource::User
                && matches!(a.event.payload, Payload::Action(Action::Message(_)))
        });
        if !message_waits && self.state == Some(AgentState::AwaitingUserInput) {
            tracing::info!("resuming the run the previous owner was carrying out");
            self.resume().await;
        }
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
        while self.state == Some(AgentState::Running) && matches!(self.waiting, Waiting::Nothing) {
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
        let mut planned = planned;
        if let Some(analyzer) = self.turn.as_ref().and_then(|t| t.analyzer) {
            let workspace = std::path::Path::new(&self.options.workspace);
            if let Some(found) = crate::security::assess(analyzer, &mut planned.action, workspace) {
                tracing::info!(rule = found.rule, risk = ?found.risk, "security rule matched");
            }
        }
        let mut event = Event::action(planned.action.clone());
        event.timeout = planned.timeout;
        event.tool_call_metadata = Some(tcm);
        match planned.action {
            Action::Think(_) => {
                let logged = Observation {
                    content: "Your thought has been logged.".into(),
                    kind: ObservationKind::Think(EmptyExtras::default()),
                };
                self.append_with_observation(event, logged, EventSource::Agent)
                    .await;
            }
            Action::Finish(_) => {
                self.append(event, EventSource::Agent, true).await;
                self.queue.clear();
                self.set_state(AgentState::Finished, "").await;
            }
            Action::TaskTracking(t) => {
                let listed = self.tasks.apply(&t);
                self.append_with_observation(event, listed, EventSource::Agent)
                    .await;
            }
            action => {
                if self
                    .turn
                    .as_ref()
                    .is_some_and(|t| t.needs_confirmation(&action))
                {
                    // The state goes first, as upstream: the UI shows the Confirm and
                    // Reject buttons when the awaiting action arrives in that state.
                    set_confirmation(&mut event, ConfirmationState::AwaitingConfirmation);
                    self.waiting = Waiting::Confirmation(Box::new(event.clone()));
                    self.set_state(AgentState::AwaitingUserConfirmation, "")
                        .await;
                    self.append(event, EventSource::Agent, true).await;
                    return;
                }
                self.append_and_await(event).await;
            }
        }
    }

    /// Asks the model for the next step, unless a limit or a loop ends the run.
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
            self.notify_status(NoticeKind::Error, "STATUS$ERROR", &format!("Agent reached its budget for this conversation: ${:.4} spent of ${budget:.4} (max_budget_per_task). Raise the budget in Settings to continue.", self.metrics.cost));
            self.set_state(AgentState::Error, &reason).await;
            return;
        }
        if self.stuck.looping() {
            self.set_state(AgentState::Error, STUCK_REASON).await;
            return;
        }
        if !self.system_sent {
            self.system_sent = true;
            let system = Action::System(SystemArgs {
                content: self.system_prompt(),
                tools: Some(Value::Array(self.tools())),
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
        let too_long = self
            .turn
            .as_ref()
            .and_then(|t| t.condenser_max_size)
            .is_some_and(|max| self.history.len() as u64 > max);
        if std::mem::take(&mut self.condense_requested) || too_long {
            self.condense().await;
        }
        self.asked_through = self.history.newest_id();
        let request = ChatRequest {
            messages: self.history.messages(&self.system_prompt()),
            tools: self.tools(),
            text_sink: self.host.thought_sink(self.asked_through),
        };
        let retries = self.retries.clone();
        let factory = self.options.llm_factory.clone();
        self.iterations += 1;
        self.waiting = Waiting::Llm(tokio::spawn(async move {
            let client = factory.client(&settings)?;
            llm::with_retries(client.as_ref(), &request, policy, |ev| {
                let _ = retries.send(ev.clone());
            })
            .await
        }));
    }

    /// The interrupted action did not report in time after a stop: the next step goes
    /// on without its observation (the model is told the call was not executed).
    async fn end_stop_grace(&mut self) {
        self.stop_grace = None;
        if matches!(self.waiting, Waiting::Observation { .. }) {
            self.waiting = Waiting::Nothing;
            self.advance().await;
        }
    }

    /// Whether a user message reached the inbox since the last model call was made;
    /// what was received is kept in the backlog (and the history) to be handled next.
    fn user_message_arrived(&mut self) -> bool {
        let max = self.max_chars();
        while let Ok(a) = self.inbox.try_recv() {
            self.history.push(a.id, a.source, &a.event, max);
            self.backlog.push_back(a);
        }
        let asked = self.asked_through;
        self.backlog.iter().any(|a| {
            a.id > asked
                && a.source == EventSource::User
                && matches!(a.event.payload, Payload::Action(Action::Message(_)))
        })
    }

    /// A user message arrived while the agent works: the model sees it at the agent's
    /// next step. A model call in flight that was made without it is cancelled (it is
    /// made again), and the tool calls planned without it are dropped (the model is told
    /// they were not executed). A running action finishes first.
    fn take_at_next_step(&mut self, message_id: u64) {
        if message_id <= self.asked_through {
            return;
        }
        self.waiting.abort_llm();
        self.queue.clear();
    }

    /// The built-in tools offered to the model: Python cells only where a kernel can
    /// start, the browser only where it is enabled.
    fn builtin_tools(&self) -> Vec<Value> {
        let mut tools = tools::definitions();
        if self.options.ipython {
            tools.push(tools::ipython_definition());
        }
        if self.options.browser {
            tools.push(super::browser_tool::definition());
        }
        tools
    }

    fn system_prompt(&self) -> String {
        let date = chrono::Local::now().format("%Y-%m-%d").to_string();
        prompt::system_prompt(&self.options.workspace, &date)
    }

    async fn on_retry(&mut self, ev: RetryEvent) {
        if !matches!(self.waiting, Waiting::Llm(_)) {
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
        if self.user_message_arrived() {
            // The answer was written without the user's newest message, which is handled
            // next (from the backlog) and asks again.
            if let Ok(r) = &result {
                self.metrics.record(r, self.turn.as_ref());
            }
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
        self.metrics.record(&response, self.turn.as_ref());
        if response.tool_calls.is_empty() {
            let text = response.content.clone().unwrap_or_default();
            if self.stuck.repeated_answer(&text) {
                // The same answer three times without doing anything: a loop.
                self.set_state(AgentState::Error, STUCK_REASON).await;
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
        self.stuck.acted();
        let total = response.tool_calls.len();
        for (i, call) in response.tool_calls.iter().enumerate() {
            let tcm = json!({
                "function_name": call.name,
                "tool_call_id": call.id,
                "model_response": response.raw,
                "total_calls_in_response": total,
            });
            let planned = if self.mcp_names.contains(&call.name) {
                tools::mcp_action(&call.name, &call.arguments)
            } else {
                tools::to_action(&call.name, &call.arguments)
            };
            let item = match planned {
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

    /// The model's summary of the events from `start` to `end`, if it gives one within a
    /// minute (the step waits for it).
    async fn summarize(&self, start: u64, end: u64) -> Option<String> {
        let mut settings = self.turn.as_ref()?.llm.clone();
        settings.stream = false;
        settings.timeout = settings.timeout.min(std::time::Duration::from_secs(60));
        let request = condense::summary_request(&self.history, start, end);
        let client = self.options.llm_factory.client(&settings).ok()?;
        match client.complete(&request).await {
            Ok(r) => r
                .content
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
            Err(e) => {
                tracing::warn!("no summary for the condensed steps: {e}");
                None
            }
        }
    }

    /// Replaces the older half of the history by the model's summary of it (or forgets
    /// it, when no summary comes); false when there is too little of it.
    async fn condense(&mut self) -> bool {
        let Some((start, end)) = self.history.condensation_range() else {
            return false;
        };
        self.notify_status(NoticeKind::Info, "STATUS$CONDENSING", condense::NOTICE);
        let summary = self.summarize(start, end).await;
        if summary.is_none() {
            self.host.notify(
                Notice::error(
                    "The model gave no summary of the older steps: they were dropped from its context instead.",
                )
                .to_json(),
            );
        }
        let event = condense::forget(start, end, summary);
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
        Action::RunIpython(a) => a.thought = text.to_string(),
        Action::Read(a) => a.thought = text.to_string(),
        Action::Edit(a) => a.thought = text.to_string(),
        Action::Browse(a) => a.thought = text.to_string(),
        Action::Finish(a) => a.thought = text.to_string(),
        Action::TaskTracking(a) => a.thought = text.to_string(),
        Action::CallToolMcp(a) => a.thought = text.to_string(),
        Action::Think(a) if a.thought.is_empty() => a.thought = text.to_string(),
        _ => {}
    }
}
