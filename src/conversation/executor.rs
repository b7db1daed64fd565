//! Runs a conversation's actions on its runtime, one at a time, in order, and sends each
//! observation back to the conversation's task.

use std::sync::Arc;
use tokio::sync::mpsc;

use super::handle::Command;
use super::output_feed::{OutputFeed, StreamKind};
use crate::events::{Action, ConfirmationState, Event, EventSource, Payload};
use crate::runtime::LocalRuntime;

/// An appended action waiting for the runtime.
pub(super) struct Job {
    pub id: u64,
    pub action: Action,
    pub timeout: Option<f64>,
    pub source: EventSource,
    pub tool_call_metadata: Option<serde_json::Value>,
}

impl Job {
    /// The job for an appended event, if the runtime executes that kind of action.
    pub fn for_event(id: u64, event: &Event, source: EventSource) -> Option<Job> {
        let Payload::Action(action) = &event.payload else {
            return None;
        };
        let unconfirmed = matches!(
            action,
            Action::Run(crate::events::CmdRunArgs {
                confirmation_state: ConfirmationState::AwaitingConfirmation
                    | ConfirmationState::Rejected,
                ..
            }) | Action::RunIpython(crate::events::IPythonRunCellArgs {
                confirmation_state: ConfirmationState::AwaitingConfirmation
                    | ConfirmationState::Rejected,
                ..
            })
        );
        let runnable = !unconfirmed
            && matches!(
                action,
                Action::Run(_)
                    | Action::RunIpython(_)
                    | Action::Read(_)
                    | Action::Write(_)
                    | Action::Edit(_)
                    | Action::Browse(_)
                    | Action::BrowseInteractive(_)
                    | Action::CallToolMcp(_)
            );
        runnable.then(|| Job {
            id,
            action: action.clone(),
            timeout: event.timeout,
            source,
            tool_call_metadata: event.tool_call_metadata.clone(),
        })
    }
}

/// Executes jobs until the channel closes; observations go to `results`.
pub(super) async fn run(
    runtime: Arc<LocalRuntime>,
    mcp: Arc<crate::mcp::McpTools>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    results: mpsc::Sender<Command>,
    metrics: Arc<crate::metrics::Metrics>,
    output: Arc<OutputFeed>,
) {
    runtime.set_output_tap(output.clone());
    while let Some(job) = jobs.recv().await {
        let started = std::time::Instant::now();
        // A command's or cell's output streams, anchored at its action, while it runs.
        let stream = match &job.action {
            Action::Run(_) => Some(output.begin(StreamKind::Command, job.id)),
            Action::RunIpython(_) => Some(output.begin(StreamKind::Ipython, job.id)),
            _ => None,
        };
        let observation = match &job.action {
            Action::CallToolMcp(args) => mcp.call(args).await,
            action => runtime.execute(action, job.timeout).await,
        };
        if let Some(stream) = stream {
            output.end(stream);
        }
        metrics.command_ran(action_name(&job.action), started.elapsed());
        let mut event = Event::observation(observation, Some(job.id));
        event.tool_call_metadata = job.tool_call_metadata;
        if results
            .send(Command::Observation {
                event,
                source: job.source,
            })
            .await
            .is_err()
        {
            break;
        }
    }
}

/// The action's kind as a metrics label (`run`, `read`, …).
fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Run(_) => "run",
        Action::RunIpython(_) => "run_ipython",
        Action::Read(_) => "read",
        Action::Write(_) => "write",
        Action::Edit(_) => "edit",
        Action::Browse(_) => "browse",
        Action::BrowseInteractive(_) => "browse_interactive",
        Action::CallToolMcp(_) => "call_tool_mcp",
        _ => "other",
    }
}
