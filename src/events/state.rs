use serde::{Deserialize, Serialize};

/// The agent controller's states (docs/protocol.md, "Agent states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Loading,
    Running,
    AwaitingUserInput,
    Paused,
    Stopped,
    Finished,
    Rejected,
    Error,
    AwaitingUserConfirmation,
    UserConfirmed,
    UserRejected,
    RateLimited,
}

impl AgentState {
    /// Every state.
    pub const ALL: [AgentState; 12] = [
        AgentState::Loading,
        AgentState::Running,
        AgentState::AwaitingUserInput,
        AgentState::Paused,
        AgentState::Stopped,
        AgentState::Finished,
        AgentState::Rejected,
        AgentState::Error,
        AgentState::AwaitingUserConfirmation,
        AgentState::UserConfirmed,
        AgentState::UserRejected,
        AgentState::RateLimited,
    ];

    /// The state named `name` on the wire, if any.
    pub fn parse(name: &str) -> Option<AgentState> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The wire name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Loading => "loading",
            AgentState::Running => "running",
            AgentState::AwaitingUserInput => "awaiting_user_input",
            AgentState::Paused => "paused",
            AgentState::Stopped => "stopped",
            AgentState::Finished => "finished",
            AgentState::Rejected => "rejected",
            AgentState::Error => "error",
            AgentState::AwaitingUserConfirmation => "awaiting_user_confirmation",
            AgentState::UserConfirmed => "user_confirmed",
            AgentState::UserRejected => "user_rejected",
            AgentState::RateLimited => "rate_limited",
        }
    }
}

#[cfg(test)]
mod ui_types {
    use super::AgentState;

    /// The web UI's wire types, checked against ours so they cannot drift apart.
    const TYPES_TS: &str = include_str!("../../frontend/src/lib/types.ts");

    #[test]
    fn the_uis_agent_state_union_names_exactly_our_states() {
        let start = TYPES_TS
            .find("export type AgentState =")
            .expect("AgentState in types.ts");
        let end = start + TYPES_TS[start..].find(';').expect("end of the union");
        let mut ui: Vec<&str> = TYPES_TS[start..end]
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| *s != "init") // an older server's state, kept for old histories
            .collect();
        ui.sort();
        let mut ours: Vec<&str> = AgentState::ALL.iter().map(|s| s.as_str()).collect();
        ours.sort();
        assert_eq!(ui, ours);
        for s in &ours {
            assert_eq!(AgentState::parse(s).map(|p| p.as_str()), Some(*s));
        }
    }
}
