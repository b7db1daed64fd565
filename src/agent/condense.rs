//! Condensation: when the context overflows, the history passes `[condenser] max_size`
//! events or the user asks (`condensation_request`), the older half of the history is
//! forgotten and replaced by the model's summary of it, recorded as a `condensation`
//! action (with `summary`) so that a restart sees the same history.

use super::history::{truncate_middle, History};
use crate::events::{Action, CondensationArgs, Event};
use crate::llm::{ChatMessage, ChatRequest};

/// What the model is asked when it summarises.
const INSTRUCTIONS: &str = "You summarize the earlier steps of a coding agent's work so that it can go on without them. Keep what matters to continue: the user's goals and requirements, decisions made, files created or changed (with paths), commands that worked or failed and why, and what remains to be done. Answer with the summary only, at most 400 words.";

/// The most of the forgotten steps' text sent to be summarised.
const MAX_SUMMARY_INPUT: usize = 24_000;

/// The request for a summary of the events from `start` to `end`.
pub(super) fn summary_request(history: &History, start: u64, end: u64) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::System(INSTRUCTIONS.into()),
            ChatMessage::User(truncate_middle(
                &history.text_between(start, end),
                MAX_SUMMARY_INPUT,
            )),
        ],
        tools: Vec::new(),
        text_sink: None,
    }
}

/// The `condensation` action forgetting `start..=end`, with the model's `summary`.
pub(super) fn forget(start: u64, end: u64, summary: Option<String>) -> Event {
    Event::action(Action::Condensation(CondensationArgs {
        forgotten_event_ids: None,
        forgotten_events_start_id: Some(start),
        forgotten_events_end_id: Some(end),
        summary_offset: summary.as_ref().map(|_| 1),
        summary,
    }))
}

/// The status message while condensing.
pub(super) const NOTICE: &str =
    "Condensing older steps: the model continues from a summary of them.";
