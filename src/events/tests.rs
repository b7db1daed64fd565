//! Round trips against samples of the OpenHands V0 serializer (docs/protocol.md, "Event JSON"): parse, re-serialize,
//! and get the same bytes.

use super::*;
use serde_json::Value;

const TS: &str = "2025-10-10T12:00:00.123456";

fn tcm() -> String {
    r#"{"function_name":"execute_bash","tool_call_id":"toolu_01","model_response":{"id":"r1","choices":[]},"total_calls_in_response":1}"#.into()
}

fn metrics() -> String {
    r#"{"accumulated_cost":0.0123,"max_budget_per_task":null,"accumulated_token_usage":{"model":"anthropic/claude-sonnet-4","prompt_tokens":1000,"completion_tokens":200,"cache_read_tokens":0,"cache_write_tokens":0,"context_window":200000,"per_turn_token":1200,"response_id":""},"costs":[],"response_latencies":[],"token_usages":[]}"#.into()
}

fn samples() -> Vec<String> {
    let (tcm, metrics) = (tcm(), metrics());
    vec![
        format!(
            r#"{{"id":0,"timestamp":"{TS}","source":"user","message":"Hello, build me a todo app","action":"message","args":{{"content":"Hello, build me a todo app","file_urls":[],"image_urls":[],"wait_for_response":false,"security_risk":-1}}}}"#
        ),
        format!(
            r#"{{"id":1,"timestamp":"{TS}","source":"agent","message":"Done! What next?","action":"message","llm_metrics":{metrics},"args":{{"content":"Done! What next?","file_urls":null,"image_urls":null,"wait_for_response":true,"security_risk":-1}}}}"#
        ),
        format!(
            r#"{{"id":2,"timestamp":"{TS}","source":"agent","message":"Running command: ls -la","action":"run","tool_call_metadata":{tcm},"llm_metrics":{metrics},"args":{{"command":"ls -la","is_input":false,"thought":"Listing files","blocking":false,"is_static":false,"cwd":null,"hidden":false,"confirmation_state":"confirmed","security_risk":-1}},"timeout":120.0}}"#
        ),
        format!(
            r#"{{"id":3,"timestamp":"{TS}","source":"agent","message":"Command `ls -la` executed with exit code 0.","cause":2,"observation":"run","tool_call_metadata":{tcm},"content":"total 0\n","extras":{{"command":"ls -la","metadata":{{"exit_code":0,"pid":-1,"username":"openhands","hostname":"abc","working_dir":"/workspace","py_interpreter_path":"/usr/bin/python","prefix":"","suffix":"\n[The command completed with exit code 0.]"}},"hidden":false}},"success":true}}"#
        ),
        format!(
            r#"{{"id":4,"timestamp":"{TS}","source":"agent","message":"Reading file: /workspace/a.py","action":"read","tool_call_metadata":{tcm},"args":{{"path":"/workspace/a.py","start":0,"end":-1,"thought":"","security_risk":-1,"impl_source":"oh_aci","view_range":null}}}}"#
        ),
        format!(
            r#"{{"id":5,"timestamp":"{TS}","source":"agent","message":"I read the file /workspace/a.py.","cause":4,"observation":"read","tool_call_metadata":{tcm},"content":"print(1)\n","extras":{{"path":"/workspace/a.py","impl_source":"oh_aci"}}}}"#
        ),
        format!(
            r#"{{"id":6,"timestamp":"{TS}","source":"agent","message":"Writing file: /workspace/b.txt","action":"write","args":{{"path":"/workspace/b.txt","content":"hello","start":0,"end":-1,"thought":"","security_risk":-1}}}}"#
        ),
        format!(
            r#"{{"id":7,"timestamp":"{TS}","source":"agent","message":"I wrote to the file /workspace/b.txt.","cause":6,"observation":"write","content":"","extras":{{"path":"/workspace/b.txt"}}}}"#
        ),
        format!(
            r#"{{"id":8,"timestamp":"{TS}","source":"agent","message":"","action":"edit","tool_call_metadata":{tcm},"args":{{"path":"/workspace/a.py","command":"str_replace","file_text":null,"old_str":"1","new_str":"2","insert_line":null,"content":"","start":1,"end":-1,"thought":"","security_risk":-1,"impl_source":"oh_aci"}}}}"#
        ),
        format!(
            r#"{{"id":9,"timestamp":"{TS}","source":"agent","message":"I edited the file /workspace/a.py.","cause":8,"observation":"edit","tool_call_metadata":{tcm},"content":"The file /workspace/a.py has been edited.","extras":{{"path":"/workspace/a.py","prev_exist":true,"old_content":"print(1)\n","new_content":"print(2)\n","impl_source":"oh_aci","diff":"--- a\n+++ b\n","_diff_cache":null}}}}"#
        ),
        format!(
            r#"{{"id":10,"timestamp":"{TS}","source":"agent","message":"I am browsing the URL: https://example.com","action":"browse","args":{{"url":"https://example.com","thought":"","security_risk":-1,"return_axtree":false}}}}"#
        ),
        format!(
            r#"{{"id":11,"timestamp":"{TS}","source":"agent","message":"Visited https://example.com","cause":10,"observation":"browse","content":"Example Domain","extras":{{"url":"https://example.com","trigger_by_action":"browse","screenshot":"","screenshot_path":null,"set_of_marks":"","error":false,"goal_image_urls":[],"open_pages_urls":[],"active_page_index":-1,"dom_object":{{}},"axtree_object":{{}},"extra_element_properties":{{}},"last_browser_action":"","last_browser_action_error":"","focused_element_bid":"","filter_visible_only":false}}}}"#
        ),
        format!(
            r#"{{"id":12,"timestamp":"{TS}","source":"agent","message":"I am thinking...: Let me plan","action":"think","tool_call_metadata":{tcm},"args":{{"thought":"Let me plan"}}}}"#
        ),
        format!(
            r#"{{"id":13,"timestamp":"{TS}","source":"agent","message":"Your thought has been logged.","cause":12,"observation":"think","tool_call_metadata":{tcm},"content":"Your thought has been logged.","extras":{{}}}}"#
        ),
        format!(
            r#"{{"id":14,"timestamp":"{TS}","source":"agent","message":"All done! What's next on the agenda?","action":"finish","tool_call_metadata":{tcm},"llm_metrics":{metrics},"args":{{"final_thought":"All done","outputs":{{}},"thought":""}}}}"#
        ),
        format!(
            r#"{{"id":15,"timestamp":"{TS}","source":"user","message":"Agent state changed to paused","action":"change_agent_state","args":{{"agent_state":"paused","thought":""}}}}"#
        ),
        format!(
            r#"{{"id":16,"timestamp":"{TS}","source":"environment","message":"","observation":"agent_state_changed","content":"","extras":{{"agent_state":"awaiting_user_input","reason":""}}}}"#
        ),
        format!(
            r#"{{"id":17,"timestamp":"{TS}","source":"agent","message":"Something failed","observation":"error","content":"Something failed","extras":{{"error_id":""}}}}"#
        ),
        format!(
            r#"{{"id":18,"timestamp":"{TS}","source":"environment","message":"No observation","cause":19,"observation":"null","content":"","extras":{{}}}}"#
        ),
        format!(
            r#"{{"id":19,"timestamp":"{TS}","source":"user","message":"Retrieving content for: Hello","action":"recall","args":{{"recall_type":"workspace_context","query":"Hello","thought":""}}}}"#
        ),
        format!(
            r#"{{"id":20,"timestamp":"{TS}","source":"environment","message":"Added workspace context","cause":19,"observation":"recall","content":"Added workspace context","extras":{{"recall_type":"workspace_context","repo_name":"","repo_directory":"","repo_branch":"","repo_instructions":"","runtime_hosts":{{}},"additional_agent_instructions":"","date":"2025-10-10","custom_secrets_descriptions":{{}},"conversation_instructions":"","working_dir":"/workspace","microagent_knowledge":[]}}}}"#
        ),
        format!(
            r#"{{"id":21,"timestamp":"{TS}","source":"agent","message":"You are OpenHands agent","action":"system","args":{{"content":"You are OpenHands agent","tools":[{{"type":"function"}}],"openhands_version":"0.59.0","agent_class":"CodeActAgent"}}}}"#
        ),
        format!(
            r#"{{"id":22,"timestamp":"{TS}","source":"agent","message":"I am calling MCP tool: fetch","action":"call_tool_mcp","args":{{"name":"fetch","arguments":{{"url":"https://x"}},"thought":"","security_risk":-1}}}}"#
        ),
        format!(
            r#"{{"id":23,"timestamp":"{TS}","source":"agent","message":"Action has been rejected by the user! Waiting for further user input.","observation":"user_rejected","content":"Action has been rejected by the user! Waiting for further user input.","extras":{{}}}}"#
        ),
        format!(
            r#"{{"id":24,"timestamp":"{TS}","source":"agent","message":"Managing 1 tasks","action":"task_tracking","args":{{"command":"plan","task_list":[{{"id":"1","title":"x","status":"todo","notes":""}}],"thought":""}}}}"#
        ),
    ]
}

#[test]
fn every_reference_sample_round_trips_byte_for_byte() {
    for sample in samples() {
        let value: Value = serde_json::from_str(&sample).unwrap();
        let event = Event::from_value(value).unwrap_or_else(|e| panic!("{sample}: {e}"));
        assert_eq!(event.to_json(), sample);
    }
}

#[test]
fn client_payloads_in_both_shapes_become_user_messages() {
    let seed = serde_json::json!({"type":"message","source":"user","message":"Hello, agent!"});
    let e = parse_client_event(seed).unwrap();
    assert!(
        matches!(&e.payload, Payload::Action(Action::Message(m)) if m.content == "Hello, agent!" && m.file_urls == Some(vec![]))
    );
    let ui = serde_json::json!({"action":"message","args":{"content":"fix","image_urls":[],"file_urls":[],"timestamp":"2025-10-10T12:00:00.000Z"}});
    let e = parse_client_event(ui).unwrap();
    assert!(matches!(&e.payload, Payload::Action(Action::Message(m)) if m.content == "fix"));
    let run =
        serde_json::json!({"action":"run","args":{"command":"ls","hidden":false},"timeout":30});
    let e = parse_client_event(run).unwrap();
    assert_eq!(e.timeout, Some(30.0));
    let legacy = serde_json::json!({"action":"run","args":{"command":"ls","is_confirmed":"confirmed","security_risk":7}});
    assert!(parse_client_event(legacy).is_ok());
}

#[test]
fn client_payload_errors_say_what_is_wrong() {
    let cases = [
        (serde_json::json!("text"), "Expected a JSON object"),
        (serde_json::json!([1]), "Expected a JSON object"),
        (serde_json::json!({"action":"fly"}), "Unknown action type"),
        (
            serde_json::json!({"action":"message","args":"x"}),
            "args must be an object",
        ),
        (
            serde_json::json!({"action":"message","args":{}}),
            "missing field `content`",
        ),
        (
            serde_json::json!({"action":"run","args":{"command":"ls","bogus":1}}),
            "unknown field `bogus`",
        ),
        (serde_json::json!({"action":7}), "must be a string"),
        (
            serde_json::json!({"observation":"run"}),
            "only send actions",
        ),
        (serde_json::json!({"type":"wave"}), "Unknown message type"),
        (
            serde_json::json!({"type":"message","message":5}),
            "must be a string",
        ),
        (
            serde_json::json!({"nothing":true}),
            "neither an `action` nor an `observation`",
        ),
    ];
    for (payload, want) in cases {
        let err = parse_client_event(payload.clone()).unwrap_err().to_string();
        assert!(err.contains(want), "{payload}: {err}");
    }
}
