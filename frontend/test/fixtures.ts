// Events shaped like docs/protocol.md ("Event JSON") (the reference serializer's output), trimmed.
import type { OHEvent } from "../src/lib/types";

export const userMessage = (id: number, content: string): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:00.123456",
  source: "user",
  message: content,
  action: "message",
  args: { content, file_urls: [], image_urls: [], wait_for_response: false, security_risk: -1 },
});

export const agentMessage = (id: number, content: string): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:01.000000",
  source: "agent",
  message: content,
  action: "message",
  llm_metrics: {
    accumulated_cost: 0.0123,
    max_budget_per_task: null,
    accumulated_token_usage: { model: "anthropic/claude-sonnet-4", prompt_tokens: 1000, completion_tokens: 200 },
  },
  args: { content, file_urls: null, image_urls: null, wait_for_response: true, security_risk: -1 },
});

export const runAction = (id: number, command: string, source = "agent", extra: Record<string, unknown> = {}): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:02.000000",
  source,
  message: `Running command: ${command}`,
  action: "run",
  args: {
    command,
    is_input: false,
    thought: "",
    blocking: false,
    is_static: false,
    cwd: null,
    hidden: false,
    confirmation_state: "confirmed",
    security_risk: -1,
    ...extra,
  },
});

export const runObs = (id: number, cause: number, content: string, exit_code = 0, source = "agent"): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:03.000000",
  source,
  message: `Command executed with exit code ${exit_code}.`,
  cause,
  observation: "run",
  content,
  extras: {
    command: "ls -la",
    metadata: { exit_code, pid: -1, username: "openhands", hostname: "abc", working_dir: "/workspace", prefix: "", suffix: "" },
    hidden: false,
  },
  success: exit_code === 0,
});

export const editAction = (id: number): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:04.000000",
  source: "agent",
  message: "",
  action: "edit",
  args: { path: "/workspace/a.py", command: "str_replace", file_text: null, old_str: "1", new_str: "2", thought: "" },
});

export const editObs = (id: number, cause: number): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:05.000000",
  source: "agent",
  message: "I edited the file /workspace/a.py.",
  cause,
  observation: "edit",
  content: "The file /workspace/a.py has been edited.",
  extras: {
    path: "/workspace/a.py",
    prev_exist: true,
    old_content: "print(1)\n",
    new_content: "print(2)\n",
    diff: "--- /workspace/a.py\n+++ /workspace/a.py\n@@ -1 +1 @@\n-print(1)\n+print(2)\n",
    _diff_cache: null,
  },
});

export const stateChanged = (id: number, agent_state: string, reason = ""): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:06.000000",
  source: "environment",
  message: "",
  observation: "agent_state_changed",
  content: "",
  extras: { agent_state, reason },
});

export const changeState = (id: number, agent_state: string, source: "user" | "environment" = "user"): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:07.000000",
  source,
  message: `Agent state changed to ${agent_state}`,
  action: "change_agent_state",
  args: { agent_state, thought: "" },
});

export const thinkAction = (id: number, thought: string): OHEvent => ({
  id,
  source: "agent",
  message: `I am thinking...: ${thought}`,
  action: "think",
  args: { thought },
});

export const thinkObs = (id: number, cause: number): OHEvent => ({
  id,
  source: "agent",
  message: "Your thought has been logged.",
  cause,
  observation: "think",
  content: "Your thought has been logged.",
  extras: {},
});

export const finishAction = (id: number, final_thought: string): OHEvent => ({
  id,
  source: "agent",
  message: "All done! What's next on the agenda?",
  action: "finish",
  args: { final_thought, outputs: {}, thought: "" },
});

export const taskTracking = (id: number, task_list: unknown[], command = "plan"): OHEvent => ({
  id,
  source: "agent",
  message: "Managing tasks",
  action: "task_tracking",
  args: { command, task_list, thought: "" },
});

export const errorObs = (id: number, content: string, cause?: number): OHEvent => ({
  id,
  source: "agent",
  message: content,
  ...(cause === undefined ? {} : { cause }),
  observation: "error",
  content,
  extras: { error_id: "" },
});

export const systemAction = (id: number): OHEvent => ({
  id,
  source: "agent",
  message: "You are OpenHands agent…",
  action: "system",
  args: { content: "You are OpenHands agent…", tools: [], openhands_version: "0.59.0", agent_class: "CodeActAgent" },
});

export const browseInteractiveAction = (id: number, code: string): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:04.000000",
  source: "agent",
  message: `I am interacting with the browser:\n\`\`\`\n${code}\n\`\`\``,
  action: "browse_interactive",
  args: { browser_actions: code, thought: "", browsergym_send_msg_to_user: "", security_risk: 0, return_axtree: false },
});

export const browseInteractiveObs = (id: number, cause: number, url: string, screenshot: string, tree: string): OHEvent => ({
  id,
  timestamp: "2025-10-10T12:00:05.000000",
  source: "agent",
  message: `Visited ${url}`,
  cause,
  observation: "browse",
  content: `[Current URL: ${url}]\n[Focused element bid: ]\n\n[Action executed successfully.]\n${tree}`,
  extras: {
    url,
    trigger_by_action: "browse_interactive",
    screenshot,
    screenshot_path: null,
    set_of_marks: "",
    error: false,
    goal_image_urls: [],
    open_pages_urls: [url],
    active_page_index: 0,
    dom_object: {},
    axtree_object: {},
    extra_element_properties: {},
    last_browser_action: "goto('http://localhost:8000/')",
    last_browser_action_error: "",
    focused_element_bid: "",
    filter_visible_only: false,
  },
});
