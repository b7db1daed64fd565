// The chat's views rendered to HTML (preact-render-to-string) from events shaped as in docs/protocol.md.
import { renderToString } from "preact-render-to-string";
import { describe, expect, it } from "vitest";
import { ChatItemView } from "../src/components/EventViews";
import { settingsPayload } from "../src/components/SettingsDialog";
import { buildChatItems } from "../src/lib/eventlog";
import type { OHEvent } from "../src/lib/types";
import { browseInteractiveAction, browseInteractiveObs, editAction, editObs, errorObs, finishAction, runAction, runObs, stateChanged, taskTracking, userMessage } from "./fixtures";

function html(events: OHEvent[], pendingId: number | null = null, settled = false) {
  return buildChatItems(events)
    .map((item) => renderToString(<ChatItemView item={item} pendingId={pendingId} settled={settled} onConfirm={() => {}} />))
    .join("\n");
}

describe("chat views", () => {
  it("a command with its output in terminal style and its exit code", () => {
    const out = html([runAction(1, "ls -la"), runObs(2, 1, "total 0\n<evil>\n", 2)]);
    expect(out).toContain('data-eids="1 2"');
    expect(out).toContain("ls -la");
    expect(out).toContain("total 0");
    expect(out).toContain("&lt;evil");
    expect(out).not.toContain("<evil>");
    expect(out).toMatch(/exit 2/);
  });

  it("the interactive browser shows its actions, the screenshot and the accessibility tree", () => {
    const shot = "data:image/png;base64,iVBORw0KGgo=";
    const out = html([
      browseInteractiveAction(1, "fill('6', 'Ada')\nclick('10')"),
      browseInteractiveObs(2, 1, "http://localhost:8000/form", shot, "\t[6] textbox 'Name' <script>"),
    ]);
    expect(out).toContain(`src="${shot}"`);
    expect(out).toContain("http://localhost:8000/form");
    expect(out).toContain("click");
    expect(out).toContain("[6] textbox 'Name'");
    expect(out).toContain("&lt;script>");
    expect(out).not.toContain("<script>");
  });

  it("a screenshot that is not a data image is not shown", () => {
    const out = html([browseInteractiveAction(1, "noop()"), browseInteractiveObs(2, 1, "http://x/", "javascript:alert(1)", "")]);
    expect(out).not.toContain("<img");
  });

  it("a command still running, and one that will not get a result", () => {
    expect(html([runAction(1, "sleep 9")])).toContain("running");
    expect(html([runAction(1, "sleep 9")], null, true)).toContain("no result");
  });

  it("an edit as a diff without the file header lines", () => {
    const out = html([editAction(1), editObs(2, 1)]);
    expect(out).toContain('class="d-del"');
    expect(out).toContain('class="d-add"');
    expect(out).toContain("+print(2)");
    expect(out).not.toContain("+++ /workspace/a.py");
  });

  it("finish shows the final thought as markdown", () => {
    const out = html([finishAction(1, "All **done**")]);
    expect(out).toContain("Finished");
    expect(out).toContain("<strong>done</strong>");
  });

  it("user messages render markdown but never raw HTML", () => {
    const out = html([userMessage(0, "<img src=x onerror=alert(1)> *hi*")]);
    expect(out).not.toContain("<img");
    expect(out).toContain("<em>hi</em>");
  });

  it("Confirm and Reject on the action that awaits confirmation", () => {
    const ev = runAction(3, "rm -rf build", "agent", { confirmation_state: "awaiting_confirmation" });
    expect(html([ev], 3)).toMatch(/data-testid="confirm"[\s\S]*data-testid="reject"/);
    expect(html([ev], null)).not.toContain('data-testid="confirm"');
  });

  it("errors, the task list, and hidden events as invisible markers with their ids", () => {
    const out = html([
      stateChanged(0, "loading"),
      errorObs(1, "LLM authentication failed"),
      taskTracking(2, [{ id: "1", title: "Write tests", status: "in_progress" }]),
    ]);
    expect(out).toMatch(/<div class="ev-hidden" hidden(="")? data-eids="0">/);
    expect(out).toContain("LLM authentication failed");
    expect(out).toContain("Write tests");
  });
});

describe("settings form", () => {
  const base = { llm_model: " openai/gpt-4o ", llm_base_url: "", llm_api_key: "", clear_key: false, agent: "CodeActAgent", max_iterations: "30", confirmation_mode: true };
  it("an empty key field keeps the stored key; clearing sends null", () => {
    expect(settingsPayload(base)).toEqual({ llm_model: "openai/gpt-4o", llm_base_url: null, agent: "CodeActAgent", confirmation_mode: true, max_iterations: 30 });
    expect(settingsPayload({ ...base, llm_api_key: "sk-1" }).llm_api_key).toBe("sk-1");
    expect(settingsPayload({ ...base, llm_api_key: "sk-1", clear_key: true }).llm_api_key).toBeNull();
    expect(settingsPayload({ ...base, max_iterations: "" }).max_iterations).toBeNull();
  });
});

describe("conversation list usage", () => {
  it("shows the cost and tokens of a conversation that used the LLM, nothing otherwise", async () => {
    const { usageText } = await import("../src/components/ConversationList");
    expect(usageText({ conversation_id: "a", title: "t", accumulated_cost: 0.36, total_tokens: 1330 })).toBe("$0.36 · 1,330 tokens");
    expect(usageText({ conversation_id: "a", title: "t", accumulated_cost: 0.0012, total_tokens: 5 })).toBe("$0.0012 · 5 tokens");
    expect(usageText({ conversation_id: "a", title: "t" })).toBe("");
    expect(usageText({ conversation_id: "a", title: "t", accumulated_cost: 0, total_tokens: 0 })).toBe("");
  });
});
