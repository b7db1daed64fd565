import { describe, expect, it } from "vitest";
import { queuedMessageIds } from "../src/lib/queue";
import { agentMessage, runAction, runObs, stateChanged, userMessage } from "./fixtures";

describe("queuedMessageIds", () => {
  const running = [userMessage(3, "task"), stateChanged(4, "running"), runAction(5, "sleep 5")];

  it("a message stored while the agent runs is queued until an agent action follows it", () => {
    const events = [...running, userMessage(6, "more"), runObs(7, 5, "done")];
    expect([...queuedMessageIds(events, "running")]).toEqual([6]);
    const taken = [...events, runAction(8, "ls")];
    expect([...queuedMessageIds(taken, "running")]).toEqual([]);
  });

  it("a message sent while the agent waits for input is not queued", () => {
    const events = [stateChanged(2, "awaiting_user_input"), userMessage(3, "hi")];
    expect([...queuedMessageIds(events, "awaiting_user_input")]).toEqual([]);
    expect([...queuedMessageIds([...events, stateChanged(4, "running")], "running")]).toEqual([]);
  });

  it("nothing is shown as queued once the agent has stopped working", () => {
    const events = [...running, userMessage(6, "more"), stateChanged(7, "stopped")];
    expect([...queuedMessageIds(events, "stopped")]).toEqual([]);
    expect([...queuedMessageIds([...running, userMessage(6, "more"), agentMessage(7, "ok")], "running")]).toEqual([]);
  });
});
