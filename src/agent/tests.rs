//! The controller driven through a fake [`AgentHost`] (the conversation's stream, with
//! a fake executor for commands) and a scripted LLM: no HTTP, no runtime, no store.

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

use super::{AgentHost, AgentOptions, Appended, LlmFactory};
use crate::config::LlmConfig;
use crate::events::{
    Action, AgentState, ChangeAgentStateArgs, CmdOutputExtras, CmdOutputMetadata,
    ConfirmationState, Event, EventSource, MessageArgs, Observation, ObservationKind, Payload,
};
use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, ToolCall, Usage};

/// Server options with a model configured and no retries.
pub(super) fn options() -> AgentOptions {
    AgentOptions {
        llm: LlmConfig {
            model: Some("openai/scripted".into()),
            num_retries: 0,
            ..LlmConfig::default()
        },
        max_iterations: 100,
        max_budget_per_task: None,
        confirmation_mode: false,
        ipython: false,
        security_analyzer: Some(crate::security::Analyzer::Both),
        workspace: "/workspace".into(),
        llm_factory: LlmFactory::default(),
        browser: false,
        condenser_max_size: None,
    }
}

// ---------------------------------------------------------------- the scripted LLM

/// Answers chat requests with the responses pushed to it, in order; with none left, a
/// request waits (like a slow model). Title requests (no tools) are answered at once.
struct ScriptedLlm {
    push: mpsc::UnboundedSender<Result<ChatResponse, LlmError>>,
    answers: tokio::sync::Mutex<mpsc::UnboundedReceiver<Result<ChatResponse, LlmError>>>,
    requests: Mutex<Vec<ChatRequest>>,
}

/// The title the scripted LLM gives every conversation.
const SCRIPTED_TITLE: &str = "Scripted title";

impl ScriptedLlm {
    fn new() -> Arc<Self> {
        let (push, answers) = mpsc::unbounded_channel();
        Arc::new(ScriptedLlm {
            push,
            answers: tokio::sync::Mutex::new(answers),
            requests: Mutex::new(Vec::new()),
        })
    }

    fn answer(&self, response: ChatResponse) {
        let _ = self.push.send(Ok(response));
    }

    /// How many step requests (not title requests) the agent made.
    fn steps(&self) -> usize {
        lock(&self.requests).len()
    }
}

struct ScriptedClient(Arc<ScriptedLlm>);

#[async_trait]
impl LlmClient for ScriptedClient {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if request.tools.is_empty() {
            return Ok(text(SCRIPTED_TITLE));
        }
        lock(&self.0.requests).push(request.clone());
        match self.0.answers.lock().await.recv().await {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

fn response(content: Option<&str>, tool_calls: Vec<ToolCall>) -> ChatResponse {
    ChatResponse {
        id: "resp".into(),
        content: content.map(str::to_string),
        tool_calls,
        usage: Usage {
            prompt_tokens: 10,
            completion_tokens: 0,
            ..Usage::default()
        },
        raw: json!({"id": "resp"}),
    }
}

/// A plain-text answer.
fn text(content: &str) -> ChatResponse {
    response(Some(content), Vec::new())
}

/// An answer calling one tool.
fn call(name: &str, arguments: Value) -> ChatResponse {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    response(
        None,
        vec![ToolCall {
            id: format!("call_{}", CALLS.fetch_add(1, Ordering::Relaxed)),
            name: name.into(),
            arguments: arguments.to_string(),
        }],
    )
}

fn bash(command: &str, risk: &str) -> ChatResponse {
    call(
        "execute_bash",
        json!({"command": command, "security_risk": risk}),
    )
}

fn finish() -> ChatResponse {
    call("finish", json!({"message": "done"}))
}

// ---------------------------------------------------------------- the fake host

/// What the fake runtime answers to a command (None: it is still running).
type Executor = Box<dyn Fn(&str) -> Option<Observation> + Send + Sync>;

/// The conversation as the agent sees it: stores events in memory, gives every appended
/// event to the agent's inbox (as the conversation's task does), and runs commands that
/// are not awaiting confirmation through `executor`.
struct FakeHost {
    events: Mutex<Vec<Appended>>,
    inbox: mpsc::UnboundedSender<Appended>,
    settings: Map<String, Value>,
    notices: Mutex<Vec<Value>>,
    busy: Mutex<Vec<bool>>,
    titles: Mutex<Vec<(String, String)>>,
    executor: Executor,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeHost {
    fn store(&self, mut event: Event, source: EventSource) -> u64 {
        let mut events = lock(&self.events);
        let id = events.len() as u64;
        event.id = Some(id);
        event.source = Some(source);
        let appended = Appended { id, source, event };
        events.push(appended.clone());
        let _ = self.inbox.send(appended);
        id
    }

    /// The observation the runtime would give, if it runs this event.
    fn run(&self, id: u64, event: &Event) -> Option<Event> {
        let Payload::Action(Action::Run(run)) = &event.payload else {
            return None;
        };
        if matches!(
            run.confirmation_state,
            ConfirmationState::AwaitingConfirmation | ConfirmationState::Rejected
        ) {
            return None;
        }
        let mut obs = Event::observation((self.executor)(&run.command)?, Some(id));
        obs.tool_call_metadata = event.tool_call_metadata.clone();
        Some(obs)
    }
}

#[async_trait]
impl AgentHost for FakeHost {
    async fn append(&self, event: Event, source: EventSource) -> Option<u64> {
        let copy = event.clone();
        let id = self.store(event, source);
        if let Some(obs) = self.run(id, &copy) {
            self.store(obs, EventSource::Agent);
        }
        Some(id)
    }

    fn notify(&self, json: String) {
        lock(&self.notices).push(serde_json::from_str(&json).unwrap_or(Value::Null));
    }

    async fn settings(&self) -> Map<String, Value> {
        self.settings.clone()
    }

    async fn stored_events(&self) -> Vec<Appended> {
        lock(&self.events).clone()
    }

    fn set_busy(&self, busy: bool) {
        lock(&self.busy).push(busy);
    }

    async fn retitle(&self, title: String, if_title: String) {
        lock(&self.titles).push((title, if_title));
    }
}

/// Exit code 0 and the command echoed back.
fn succeed(command: &str) -> Option<Observation> {
    Some(Observation {
        content: format!("ran {command}"),
        kind: ObservationKind::Run(CmdOutputExtras {
            command: command.into(),
            metadata: CmdOutputMetadata {
                exit_code: 0,
                ..CmdOutputMetadata::default()
            },
            hidden: false,
        }),
    })
}

// ---------------------------------------------------------------- the harness

/// A running agent with its fake host and scripted LLM.
struct Harness {
    host: Arc<FakeHost>,
    llm: Arc<ScriptedLlm>,
    /// How many events the test has looked at (see [`Harness::until_state`]).
    seen: usize,
    agent: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.agent.abort();
    }
}

/// Starts an agent with these user settings, server options and command results,
/// after the `loading` state the conversation's task stores when it opens.
fn start_with(settings: Value, mut options: AgentOptions, executor: Executor) -> Harness {
    let llm = ScriptedLlm::new();
    let scripted = llm.clone();
    options.llm_factory =
        LlmFactory::new(move |_| Ok(Box::new(ScriptedClient(scripted.clone())) as _));
    let (inbox, agent_inbox) = mpsc::unbounded_channel();
    let host = Arc::new(FakeHost {
        events: Mutex::new(Vec::new()),
        inbox,
        settings: settings.as_object().cloned().unwrap_or_default(),
        notices: Mutex::new(Vec::new()),
        busy: Mutex::new(Vec::new()),
        titles: Mutex::new(Vec::new()),
        executor,
    });
    // Stored without reaching the agent's inbox, as the task does.
    let mut loading = Event::observation(
        Observation::agent_state_changed(AgentState::Loading, ""),
        None,
    );
    loading.id = Some(0);
    loading.source = Some(EventSource::Environment);
    lock(&host.events).push(Appended {
        id: 0,
        source: EventSource::Environment,
        event: loading,
    });
    let agent = tokio::spawn(super::run(host.clone(), options, agent_inbox));
    Harness {
        host,
        llm,
        seen: 0,
        agent,
    }
}

fn start(settings: Value) -> Harness {
    start_with(settings, options(), Box::new(succeed))
}

impl Harness {
    /// The stored events as clients get them.
    fn events(&self) -> Vec<Value> {
        lock(&self.host.events)
            .iter()
            .map(|a| a.event.to_value())
            .collect()
    }

    /// Every agent state stored so far, in order.
    fn states(&self) -> Vec<String> {
        states(&self.events())
    }

    /// The reason stored with the last state.
    fn reason(&self) -> String {
        self.events()
            .iter()
            .rev()
            .find(|e| e["observation"] == "agent_state_changed")
            .map(|e| e["extras"]["reason"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    /// Waits until a state stored after the events already looked at is `state` and
    /// is the latest one.
    async fn until_state(&mut self, state: &str) {
        let wait = async {
            loop {
                let events = self.events();
                let fresh = states(&events[self.seen.min(events.len())..]);
                if fresh.last().map(String::as_str) == Some(state) {
                    return events.len();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), wait).await {
            Ok(seen) => self.seen = seen,
            Err(_) => panic!("no {state} state; states: {:?}", self.states()),
        }
    }

    /// Waits until the agent has made `n` step requests to the LLM.
    async fn until_steps(&self, n: usize) {
        eventually(&format!("{n} LLM requests"), || self.llm.steps() >= n).await;
    }

    /// The user sends a chat message.
    fn message(&self, text: &str) {
        self.host.store(
            Event::action(Action::Message(MessageArgs::text(text))),
            EventSource::User,
        );
    }

    /// The user asks for a state (stop, pause, resume, confirm, reject).
    fn change_state(&self, state: AgentState) {
        self.host.store(
            Event::action(Action::ChangeAgentState(ChangeAgentStateArgs {
                agent_state: state.as_str().into(),
                thought: String::new(),
            })),
            EventSource::User,
        );
    }

    /// The stored events whose `key` (action or observation) is `kind`.
    fn of_kind(&self, key: &str, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e[key] == kind)
            .collect()
    }

    fn notices(&self) -> Vec<Value> {
        lock(&self.host.notices).clone()
    }
}

/// Waits (at most 5 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting for {what}");
    }
}

fn states(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["observation"] == "agent_state_changed")
        .map(|e| {
            e["extras"]["agent_state"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

// ---------------------------------------------------------------- the state machine

#[tokio::test]
async fn start_up_announces_awaiting_user_input_after_loading() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    let events = h.events();
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0]["extras"]["agent_state"], "loading");
    assert_eq!(events[1]["action"], "change_agent_state");
    assert_eq!(events[1]["args"]["agent_state"], "awaiting_user_input");
    assert_eq!(events[2]["extras"]["agent_state"], "awaiting_user_input");
    for e in &events {
        assert_eq!(e["source"], "environment");
    }
    assert_eq!(*lock(&h.host.busy), [false]);
}

#[tokio::test]
async fn a_message_runs_a_command_and_finishes() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    h.llm.answer(bash("echo hi", "LOW"));
    h.llm.answer(finish());
    h.message("say hi");
    h.until_state("finished").await;
    assert_eq!(
        h.states(),
        ["loading", "awaiting_user_input", "running", "finished"]
    );
    let kinds: Vec<String> = h.events()[3..]
        .iter()
        .map(|e| {
            let kind = e.get("action").or_else(|| e.get("observation"));
            kind.and_then(Value::as_str).unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "agent_state_changed",
            "system",
            "run",
            "run",
            "finish",
            "agent_state_changed"
        ]
    );
    let run = &h.of_kind("action", "run")[0];
    let output = &h.of_kind("observation", "run")[0];
    assert_eq!(output["cause"], run["id"]);
    assert_eq!(output["content"], "ran echo hi");
    assert_eq!(output["tool_call_metadata"], run["tool_call_metadata"]);
    assert_eq!(run["tool_call_metadata"]["function_name"], "execute_bash");
    assert_eq!(
        run["llm_metrics"]["accumulated_token_usage"]["prompt_tokens"],
        10
    );
    assert_eq!(h.llm.steps(), 2);
    assert_eq!(lock(&h.host.busy).last(), Some(&false));
    eventually("an LLM title", || !lock(&h.host.titles).is_empty()).await;
    assert_eq!(
        lock(&h.host.titles)[0],
        (SCRIPTED_TITLE.to_string(), "say hi".to_string())
    );
}

#[tokio::test]
async fn plain_text_waits_for_the_user_and_the_next_message_continues() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    h.llm.answer(text("Which file?"));
    h.message("fix the bug");
    h.until_state("awaiting_user_input").await;
    let answer = &h.of_kind("action", "message")[1];
    assert_eq!(answer["source"], "agent");
    assert_eq!(answer["args"]["content"], "Which file?");
    assert_eq!(answer["args"]["wait_for_response"], true);
    h.llm.answer(finish());
    h.message("main.rs");
    h.until_state("finished").await;
    assert_eq!(
        h.states(),
        [
            "loading",
            "awaiting_user_input",
            "running",
            "awaiting_user_input",
            "running",
            "finished"
        ]
    );
}

#[tokio::test]
async fn think_and_task_tracker_are_answered_by_the_agent_itself() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    h.llm.answer(call("think", json!({"thought": "hmm"})));
    h.llm.answer(call(
        "task_tracker",
        json!({"command": "plan", "task_list": [{"id": "1", "title": "write", "status": "todo"}]}),
    ));
    h.llm.answer(finish());
    h.message("plan it");
    h.until_state("finished").await;
    for kind in ["think", "task_tracking"] {
        let action = &h.of_kind("action", kind)[0];
        let obs = &h.of_kind("observation", kind)[0];
        assert_eq!(obs["cause"], action["id"], "{kind}");
        assert_eq!(obs["source"], "agent", "{kind}");
        assert_eq!(
            obs["tool_call_metadata"], action["tool_call_metadata"],
            "{kind}"
        );
        assert!(action.get("llm_metrics").is_some(), "{kind}");
    }
    assert_eq!(
        h.of_kind("observation", "task_tracking")[0]["content"],
        "Task list has been updated with 1 items.\n1. [ ] write\n"
    );
}

#[tokio::test]
async fn pause_cancels_the_llm_call_and_resume_asks_again() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    h.message("work slowly");
    h.until_state("running").await;
    h.until_steps(1).await;
    h.change_state(AgentState::Paused);
    h.until_state("paused").await;
    assert_eq!(lock(&h.host.busy).last(), Some(&false));
    h.change_state(AgentState::Running);
    h.until_state("running").await;
    h.until_steps(2).await;
    h.llm.answer(finish());
    h.until_state("finished").await;
}

/// Whether a step request holds a user message with this text.
fn saw_user(request: &ChatRequest, text: &str) -> bool {
    format!("{:?}", request.messages).contains(text)
}

#[tokio::test]
async fn a_message_during_a_model_call_cancels_it_and_the_next_request_has_the_message() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    h.message("first");
    h.until_steps(1).await;
    h.message("second thoughts");
    h.until_steps(2).await;
    h.llm.answer(text("Both read."));
    h.until_state("awaiting_user_input").await;
    let requests = lock(&h.llm.requests).clone();
    assert_eq!(requests.len(), 2, "one request per message, no more");
    assert!(!saw_user(&requests[0], "second thoughts"));
    assert!(saw_user(&requests[1], "second thoughts"));
    // The only agent answer came from the request that saw the message.
    let answers = h.of_kind("action", "message");
    assert_eq!(answers.last().unwrap()["args"]["content"], "Both read.");
}

#[tokio::test]
async fn a_message_while_a_command_runs_drops_the_calls_planned_without_it() {
    // The first command never reports; the message arrives while it runs.
    let mut h = start_with(
        json!({}),
        options(),
        Box::new(|c: &str| if c == "slow" { None } else { succeed(c) }),
    );
    h.until_state("awaiting_user_input").await;
    let mut two_calls = bash("slow", "LOW");
    two_calls
        .tool_calls
        .extend(bash("echo planned", "LOW").tool_calls);
    h.llm.answer(two_calls);
    h.message("go");
    eventually("the slow command", || {
        !h.of_kind("action", "run").is_empty()
    })
    .await;
    h.message("change of plan");
    // The slow command ends (as a stop would end it): the next step has the message.
    let run_id = h.of_kind("action", "run")[0]["id"].as_u64().unwrap();
    let mut obs = Event::observation(succeed("slow").unwrap(), Some(run_id));
    let tcm = lock(&h.host.events)[run_id as usize]
        .event
        .tool_call_metadata
        .clone();
    obs.tool_call_metadata = tcm;
    h.host.store(obs, EventSource::Agent);
    h.until_steps(2).await;
    h.llm.answer(finish());
    h.until_state("finished").await;
    assert_eq!(
        h.of_kind("action", "run").len(),
        1,
        "the planned call was dropped"
    );
    let requests = lock(&h.llm.requests).clone();
    assert!(saw_user(&requests[1], "change of plan"));
}

#[tokio::test]
async fn stop_ends_the_wait_for_a_command_and_a_message_starts_again() {
    // Commands never finish: the agent waits for their observation.
    let mut h = start_with(json!({}), options(), Box::new(|_| None));
    h.until_state("awaiting_user_input").await;
    let mut two_calls = bash("sleep 100", "LOW");
    two_calls
        .tool_calls
        .extend(bash("echo never", "LOW").tool_calls);
    h.llm.answer(two_calls);
    h.message("go");
    eventually("the command", || !h.of_kind("action", "run").is_empty()).await;
    h.change_state(AgentState::Stopped);
    h.until_state("stopped").await;
    h.llm.answer(finish());
    h.message("again");
    h.until_state("finished").await;
    assert_eq!(
        h.states(),
        [
            "loading",
            "awaiting_user_input",
            "running",
            "stopped",
            "running",
            "finished"
        ]
    );
    // The second call of the first answer was dropped with the stop.
    assert_eq!(h.llm.steps(), 2);
    assert_eq!(h.of_kind("action", "run").len(), 1);
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn the_iteration_limit_ends_in_error_with_the_reason() {
    let mut h = start(json!({"max_iterations": 2}));
    h.until_state("awaiting_user_input").await;
    h.llm.answer(bash("echo 1", "LOW"));
    h.llm.answer(bash("echo 2", "LOW"));
    h.message("count");
    h.until_state("error").await;
    assert_eq!(
        h.reason(),
        "RuntimeError: Agent reached maximum iteration. Current iteration: 2, max iteration: 2"
    );
    assert_eq!(h.llm.steps(), 2);
    let notice = &h.notices()[0];
    assert_eq!(notice["id"], "STATUS$ERROR");
    assert_eq!(notice["type"], "error");
    // A new message starts counting again.
    h.llm.answer(finish());
    h.message("go on");
    h.until_state("finished").await;
}

#[tokio::test]
async fn the_budget_ends_in_error_with_the_reason() {
    let mut options = options();
    options.llm.input_cost_per_token = Some(0.01);
    let mut h = start_with(
        json!({"max_budget_per_task": 0.05}),
        options,
        Box::new(succeed),
    );
    h.until_state("awaiting_user_input").await;
    h.llm.answer(bash("echo 1", "LOW"));
    h.message("spend");
    h.until_state("error").await;
    assert_eq!(
        h.reason(),
        "RuntimeError: Agent reached maximum budget for conversation. Current budget: 0.10, max budget: 0.05"
    );
    let run = &h.of_kind("action", "run")[0];
    assert_eq!(run["llm_metrics"]["accumulated_cost"], 0.1);
    assert_eq!(run["llm_metrics"]["max_budget_per_task"], 0.05);
    assert_eq!(h.llm.steps(), 1);
}

#[tokio::test]
async fn without_a_model_a_message_ends_in_a_not_configured_error() {
    let mut options = options();
    options.llm.model = None;
    let mut h = start_with(json!({}), options, Box::new(succeed));
    h.until_state("awaiting_user_input").await;
    h.message("hello");
    h.until_state("error").await;
    assert!(
        h.reason().starts_with("No LLM is configured."),
        "{}",
        h.reason()
    );
    assert_eq!(h.notices()[0]["id"], "STATUS$ERROR_LLM_NOT_CONFIGURED");
    assert_eq!(h.llm.steps(), 0);
}

// ---------------------------------------------------------------- confirmation mode

/// Starts in confirmation mode and waits until a risky command awaits confirmation.
async fn awaiting_confirmation() -> Harness {
    let mut h = start(json!({"confirmation_mode": true}));
    h.until_state("awaiting_user_input").await;
    h.llm.answer(bash("rm -rf build", "HIGH"));
    h.message("clean up");
    h.until_state("awaiting_user_confirmation").await;
    h
}

#[tokio::test]
async fn confirmation_mode_stores_the_state_before_the_awaiting_action() {
    let h = awaiting_confirmation().await;
    let events = h.events();
    let n = events.len();
    assert_eq!(
        events[n - 2]["extras"]["agent_state"],
        "awaiting_user_confirmation"
    );
    assert_eq!(events[n - 1]["action"], "run");
    assert_eq!(
        events[n - 1]["args"]["confirmation_state"],
        "awaiting_confirmation"
    );
    assert!(h.of_kind("observation", "run").is_empty(), "it did not run");
}

#[tokio::test]
async fn a_confirmed_action_is_stored_again_with_a_new_id_and_runs() {
    let mut h = awaiting_confirmation().await;
    h.llm.answer(finish());
    h.change_state(AgentState::UserConfirmed);
    h.until_state("finished").await;
    let runs = h.of_kind("action", "run");
    assert_eq!(runs.len(), 2);
    assert_ne!(runs[0]["id"], runs[1]["id"]);
    assert_eq!(runs[1]["args"]["confirmation_state"], "confirmed");
    assert_eq!(runs[1]["args"]["command"], "rm -rf build");
    assert_eq!(h.of_kind("observation", "run")[0]["cause"], runs[1]["id"]);
    assert_eq!(
        &h.states()[3..],
        ["awaiting_user_confirmation", "running", "finished"]
    );
}

#[tokio::test]
async fn a_rejected_action_gets_a_user_rejected_observation_and_waits_for_input() {
    let mut h = awaiting_confirmation().await;
    h.change_state(AgentState::UserRejected);
    h.until_state("awaiting_user_input").await;
    let runs = h.of_kind("action", "run");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["args"]["confirmation_state"], "rejected");
    let rejected = &h.of_kind("observation", "user_rejected")[0];
    assert_eq!(rejected["cause"], runs[1]["id"]);
    assert_eq!(rejected["source"], "environment");
    assert_eq!(
        rejected["tool_call_metadata"],
        runs[1]["tool_call_metadata"]
    );
    assert!(h.of_kind("observation", "run").is_empty(), "it did not run");
    assert_eq!(h.llm.steps(), 1, "the model is not asked again");
}

#[tokio::test]
async fn a_message_while_awaiting_confirmation_waits_for_the_decision() {
    let h = awaiting_confirmation().await;
    h.message("actually, wait");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        h.states().last().map(String::as_str),
        Some("awaiting_user_confirmation")
    );
    assert_eq!(h.llm.steps(), 1);
}

// ---------------------------------------------------------------- stuck detection

async fn assert_stuck_after(h: &mut Harness, steps: usize) {
    h.message("go");
    h.until_state("error").await;
    assert_eq!(
        h.reason(),
        "AgentStuckInLoopError: Agent got stuck in a loop"
    );
    assert_eq!(h.llm.steps(), steps);
}

#[tokio::test]
async fn the_same_command_and_output_four_times_is_a_loop() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    for _ in 0..5 {
        h.llm.answer(bash("ls", "LOW"));
    }
    assert_stuck_after(&mut h, 4).await;
}

#[tokio::test]
async fn the_same_command_failing_three_times_is_a_loop() {
    let mut h = start_with(
        json!({}),
        options(),
        Box::new(|_| Some(Observation::error("cat: x: No such file", ""))),
    );
    h.until_state("awaiting_user_input").await;
    for _ in 0..4 {
        h.llm.answer(bash("cat x", "LOW"));
    }
    assert_stuck_after(&mut h, 3).await;
}

#[tokio::test]
async fn two_commands_alternating_three_times_are_a_loop() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    for _ in 0..4 {
        h.llm.answer(bash("ls", "LOW"));
        h.llm.answer(bash("pwd", "LOW"));
    }
    assert_stuck_after(&mut h, 6).await;
}

#[tokio::test]
async fn the_same_answer_three_times_is_a_loop() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    for _ in 0..2 {
        h.llm.answer(text("I cannot help."));
        h.message("please");
        h.until_state("awaiting_user_input").await;
    }
    h.llm.answer(text("I cannot help."));
    assert_stuck_after(&mut h, 3).await;
}

#[tokio::test]
async fn a_new_message_starts_stuck_detection_afresh() {
    let mut h = start(json!({}));
    h.until_state("awaiting_user_input").await;
    for _ in 0..3 {
        h.llm.answer(bash("ls", "LOW"));
    }
    h.llm.answer(text("Anything else?"));
    h.message("list it");
    h.until_state("awaiting_user_input").await;
    for _ in 0..3 {
        h.llm.answer(bash("ls", "LOW"));
    }
    h.llm.answer(finish());
    h.message("list it again");
    h.until_state("finished").await;
}
