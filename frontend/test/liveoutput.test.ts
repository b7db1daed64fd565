import { describe, expect, it } from "vitest";
import { LiveOutput } from "../src/lib/liveoutput";

const out = (action_id: number, seq: number, chunk: string, done = false) => ({ kind: "command", action_id, seq, chunk, ...(done ? { done } : {}) });

describe("live output", () => {
  it("grows in seq order and drops repeats after a reconnect", () => {
    const live = new LiveOutput();
    live.receive(out(5, 1, "a\n"));
    live.receive(out(5, 2, "b\n"));
    // A reconnect resends what the server kept: seq 1 and 2 again, then 3.
    live.receive(out(5, 1, "a\n"));
    live.receive(out(5, 2, "b\n"));
    live.receive(out(5, 3, "c\n"));
    expect(live.forAction(5)?.text).toBe("a\nb\nc\n");
  });

  it("is replaced by the observation and ignores output that comes after it", () => {
    const live = new LiveOutput();
    live.receive(out(5, 1, "partial"));
    live.settle({ id: 6, observation: "run", cause: 5, content: "whole" } as any);
    expect(live.forAction(5)).toBeNull();
    live.receive(out(5, 2, "late", true));
    expect(live.forAction(5)).toBeNull();
  });

  it("says so when the first output it gets is not the first made", () => {
    const live = new LiveOutput();
    live.receive(out(9, 4, "tail"));
    expect(live.forAction(9)?.text).toBe("[… earlier output not shown …]\ntail");
  });

  it("shows the model's answer as written until the agent's next event", () => {
    const live = new LiveOutput();
    live.receive({ kind: "thought", after: 3, seq: 1, chunk: "Let me " });
    live.receive({ kind: "thought", after: 3, seq: 2, chunk: "look." });
    expect(live.thought()?.text).toBe("Let me look.");
    live.settle({ id: 3, action: "message", source: "user" } as any);
    expect(live.thought()?.text).toBe("Let me look.");
    live.settle({ id: 4, action: "message", source: "agent" } as any);
    expect(live.thought()).toBeNull();
  });

  it("ignores malformed payloads", () => {
    const live = new LiveOutput();
    for (const p of [null, 42, "x", {}, { action_id: "5", seq: 1, chunk: "x" }, { action_id: 5, seq: 1.5, chunk: "x" }, { action_id: 5, seq: 1, chunk: 7 }, { kind: "thought", seq: 1, chunk: "x" }]) {
      live.receive(p);
    }
    expect(live.version).toBe(0);
  });
});
