use serde::{Deserialize, Serialize};

/// Conversation metadata, with the fields and order of upstream's `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationMetadata {
    pub conversation_id: String,
    #[serde(default)]
    pub selected_repository: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub selected_branch: Option<String>,
    #[serde(default)]
    pub git_provider: Option<String>,
    pub title: String,
    pub last_updated_at: String,
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub pr_number: Vec<i64>,
    pub created_at: String,
    #[serde(default)]
    pub llm_model: Option<String>,
    #[serde(default)]
    pub accumulated_cost: f64,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

impl ConversationMetadata {
    /// Metadata for a new conversation with the default title `Conversation <first 5 chars>`.
    pub fn new(conversation_id: &str, trigger: Option<&str>) -> Self {
        let now = utc_now();
        ConversationMetadata {
            conversation_id: conversation_id.to_string(),
            selected_repository: None,
            user_id: None,
            selected_branch: None,
            git_provider: None,
            title: default_title(conversation_id),
            last_updated_at: now.clone(),
            trigger: trigger.map(str::to_string),
            pr_number: Vec::new(),
            created_at: now,
            llm_model: None,
            accumulated_cost: 0.0,
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
        }
    }
}

/// `Conversation <first 5 chars of the id>`.
pub fn default_title(conversation_id: &str) -> String {
    let short: String = conversation_id.chars().take(5).collect();
    format!("Conversation {short}")
}

/// UTC now as upstream's REST layer writes it: `2025-10-10T12:00:00.123456Z`.
pub fn utc_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
