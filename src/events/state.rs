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
    /// The state named `name` on the wire, if any.
    pub fn parse(name: &str) -> Option<AgentState> {
        const ALL: [AgentState; 12] = [
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
        ALL.into_iter().find(|s| s.as_str() == name)
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
