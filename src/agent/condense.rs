//! Condensation: when the context overflows, the older half of the history is
//! forgotten, recorded as a `condensation` action so that a restart forgets it too.

use super::history::History;
use crate::events::{Action, CondensationArgs, Event};

/// The status message while condensing.
pub(super) const NOTICE: &str =
    "The conversation is longer than the model's context: condensing older steps.";

/// The `condensation` action that forgets the older half of `history`; None when
/// there is nothing left to forget.
pub(super) fn forget_older_half(history: &History) -> Option<Event> {
    let (start, end) = history.condensation_range()?;
    Some(Event::action(Action::Condensation(CondensationArgs {
        forgotten_event_ids: None,
        forgotten_events_start_id: Some(start),
        forgotten_events_end_id: Some(end),
        summary: None,
        summary_offset: None,
    })))
}
