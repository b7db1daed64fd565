//! Conversation titles written by the LLM from the user's first message.

use std::sync::Arc;
use std::time::Duration;

use super::{fallback_title, truncate_middle, AgentHost, LlmFactory};
use crate::llm::{ChatMessage, ChatRequest, LlmSettings};

/// What the model is asked to do.
const INSTRUCTIONS: &str = "You write titles for conversations between a user and a coding agent. Answer with the title only: at most six words, no quotes, no final period.";

/// Asks the model for a short title in the background; it replaces the fallback title
/// unless the user renamed the conversation meanwhile. Failures keep the fallback.
pub(super) fn spawn(host: Arc<dyn AgentHost>, llm: &LlmFactory, turn: &LlmSettings, text: &str) {
    let mut settings = turn.clone();
    settings.stream = false;
    settings.timeout = settings.timeout.min(Duration::from_secs(30));
    let llm = llm.clone();
    let fallback = fallback_title(text);
    let request = ChatRequest {
        messages: vec![
            ChatMessage::System(INSTRUCTIONS.into()),
            ChatMessage::User(truncate_middle(text, 2000)),
        ],
        tools: Vec::new(),
        text_sink: None,
    };
    tokio::spawn(async move {
        let Ok(client) = llm.client(&settings) else {
            return;
        };
        let Ok(response) = client.complete(&request).await else {
            return;
        };
        let title = from_answer(response.content.as_deref().unwrap_or_default());
        if !title.is_empty() {
            host.retitle(title, fallback).await;
        }
    });
}

/// The title in the model's answer: its first line without quotes or final period, at
/// most 80 characters.
fn from_answer(answer: &str) -> String {
    answer
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches(['"', '\'', '.'])
        .chars()
        .take(80)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_is_the_first_line_without_quotes_or_period() {
        assert_eq!(from_answer("\"Fix the build.\"\nBecause…"), "Fix the build");
        assert_eq!(from_answer("  'Hello'  "), "Hello");
        assert_eq!(from_answer(""), "");
        assert_eq!(from_answer(&"x".repeat(100)).len(), 80);
    }
}
