//! Stuck detection: the agent repeating itself without getting anywhere
//! (docs/protocol.md, "Agent states").

use crate::events::{Event, Observation, Payload};

/// The error reason of a detected loop, as upstream words it.
pub(super) const STUCK_REASON: &str = "AgentStuckInLoopError: Agent got stuck in a loop";

/// How many recent steps are kept (the longest pattern needs six).
const KEPT_STEPS: usize = 8;

/// The recent steps and plain-text answers of the agent.
#[derive(Debug, Default)]
pub(super) struct StuckDetector {
    /// (action, observation) signatures of recent steps.
    steps: Vec<(String, String)>,
    /// The agent's plain-text answers since its last tool call.
    answers: Vec<String>,
}

impl StuckDetector {
    /// A new user message: earlier steps no longer count (answers still do).
    pub fn new_task(&mut self) {
        self.steps.clear();
    }

    /// Records a finished step: the action's [`signature`] and its observation.
    pub fn record_step(&mut self, action: String, observation: &Observation) {
        self.steps.push((
            action,
            format!("{}:{}", observation.kind(), observation.content),
        ));
        if self.steps.len() > KEPT_STEPS {
            self.steps.remove(0);
        }
    }

    /// The same action and observation four times in a row, the same action failing
    /// three times, or two steps alternating three times each.
    pub fn looping(&self) -> bool {
        let s = &self.steps;
        let n = s.len();
        if n >= 4 && s[n - 4..].windows(2).all(|w| w[0] == w[1]) {
            return true;
        }
        if n >= 6 {
            let r = &s[n - 6..];
            if r[0] == r[2] && r[2] == r[4] && r[1] == r[3] && r[3] == r[5] && r[0] != r[1] {
                return true;
            }
        }
        n >= 3
            && s[n - 3..].windows(2).all(|w| w[0].0 == w[1].0)
            && s[n - 3..].iter().all(|(_, o)| o.starts_with("error:"))
    }

    /// Records a plain-text answer; true when it is the same answer a third time in a
    /// row without any action between (and then starts counting again).
    pub fn repeated_answer(&mut self, text: &str) -> bool {
        self.answers.push(text.to_string());
        let n = self.answers.len();
        if n >= 3 && self.answers[n - 3..].iter().all(|m| m == text) {
            self.answers.clear();
            return true;
        }
        false
    }

    /// The agent called a tool: its earlier answers are no longer a monologue.
    pub fn acted(&mut self) {
        self.answers.clear();
    }
}

/// What makes two actions (or observations) the same for stuck detection.
pub(super) fn signature(event: &Event) -> String {
    match &event.payload {
        Payload::Action(a) => serde_json::to_string(a).unwrap_or_default(),
        Payload::Observation(o) => o.content.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CmdOutputExtras, ObservationKind};

    fn output(text: &str) -> Observation {
        Observation {
            content: text.into(),
            kind: ObservationKind::Run(CmdOutputExtras::default()),
        }
    }

    fn steps(d: &mut StuckDetector, list: &[(&str, Observation)]) {
        for (action, obs) in list {
            d.record_step(action.to_string(), obs);
        }
    }

    #[test]
    fn the_same_step_four_times_is_a_loop_but_three_times_is_not() {
        let mut d = StuckDetector::default();
        steps(
            &mut d,
            &[
                ("ls", output("a")),
                ("ls", output("a")),
                ("ls", output("a")),
            ],
        );
        assert!(!d.looping());
        steps(&mut d, &[("ls", output("a"))]);
        assert!(d.looping());
    }

    #[test]
    fn the_same_action_failing_three_times_is_a_loop() {
        let mut d = StuckDetector::default();
        let failure = Observation::error("no such file", "");
        steps(
            &mut d,
            &[("cat x", failure.clone()), ("cat x", failure.clone())],
        );
        assert!(!d.looping());
        steps(&mut d, &[("cat x", Observation::error("other text", ""))]);
        assert!(d.looping());
    }

    #[test]
    fn two_steps_alternating_three_times_each_are_a_loop() {
        let mut d = StuckDetector::default();
        for _ in 0..2 {
            steps(&mut d, &[("a", output("1")), ("b", output("2"))]);
        }
        steps(&mut d, &[("a", output("1"))]);
        assert!(!d.looping());
        steps(&mut d, &[("b", output("2"))]);
        assert!(d.looping());
    }

    #[test]
    fn the_same_answer_three_times_is_a_loop_unless_a_tool_call_comes_between() {
        let mut d = StuckDetector::default();
        assert!(!d.repeated_answer("hi"));
        assert!(!d.repeated_answer("hi"));
        d.acted();
        assert!(!d.repeated_answer("hi"));
        assert!(!d.repeated_answer("hi"));
        assert!(d.repeated_answer("hi"));
        // Counting starts again after a detected loop.
        assert!(!d.repeated_answer("hi"));
    }

    #[test]
    fn a_new_task_forgets_the_steps_but_not_the_answers() {
        let mut d = StuckDetector::default();
        steps(
            &mut d,
            &[
                ("ls", output("a")),
                ("ls", output("a")),
                ("ls", output("a")),
            ],
        );
        d.repeated_answer("same");
        d.repeated_answer("same");
        d.new_task();
        steps(&mut d, &[("ls", output("a"))]);
        assert!(!d.looping());
        assert!(d.repeated_answer("same"));
    }

    #[test]
    fn different_steps_are_not_a_loop() {
        let mut d = StuckDetector::default();
        for i in 0..8 {
            d.record_step(format!("step {i}"), &output("ok"));
        }
        assert!(!d.looping());
    }
}
