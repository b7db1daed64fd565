import { describe, expect, it } from "vitest";
import { EventLog, buildChatItems, buildTerminalEntries, derive, exitCode, isHiddenInChat, stateLabel } from "../src/lib/eventlog";
import {
  agentMessage,
  changeState,
  editAction,
  editObs,
  errorObs,
  finishAction,
  runAction,
  runObs,
  stateChanged,
  systemAction,
  taskTracking,
  thinkAction,
  thinkObs,
  userMessage,
} from "./fixtures";

const allIds = (items: { ids: number[] }[]) => items.flatMap((i) => i.ids);

describe("EventLog: de-duplication and latest_event_id", () => {
  it("keeps each id once and counts only new events", () => {
    const log = new EventLog();
    expect(log.add(userMessage(0, "hi"))).toBe("added");
    expect(log.add(userMessage(0, "hi"))).toBe("duplicate");
    expect(log.addMany([userMessage(0, "hi"), runAction(1, "ls"), runObs(2, 1, "a\n")])).toBe(2);
    expect(log.events.map((e) => e.id)).toEqual([0, 1, 2]);
    expect(log.size).toBe(3);
  });

  it("a replay after a reconnect adds nothing twice", () => {
    const log = new EventLog();
    const evs = [userMessage(0, "a"), runAction(1, "ls"), runObs(2, 1, "x"), agentMessage(3, "done")];
    log.addMany(evs.slice(0, 3));
    const v = log.version;
    // The server replays from latest_event_id + 1, but a sloppy server may resend more.
    expect(log.addMany(evs)).toBe(1);
    expect(log.version).toBe(v + 1);
    expect(log.events.map((e) => e.id)).toEqual([0, 1, 2, 3]);
  });

  it("tracks the highest id as latest_event_id (-1 when empty)", () => {
    const log = new EventLog();
    expect(log.latestEventId).toBe(-1);
    log.add(userMessage(0, "a"));
    expect(log.latestEventId).toBe(0);
    log.add(runAction(5, "ls"));
    expect(log.latestEventId).toBe(5);
    log.add(runAction(3, "ls")); // back-filled: does not move it back
    expect(log.latestEventId).toBe(5);
  });

  it("inserts late (back-filled) events at their place and reports the gaps", () => {
    const log = new EventLog();
    log.addMany([userMessage(0, "a"), userMessage(3, "d"), userMessage(5, "f")]);
    expect(log.missingIds()).toEqual([1, 2, 4]);
    log.add(userMessage(2, "c"));
    log.add(userMessage(1, "b"));
    log.add(userMessage(4, "e"));
    expect(log.events.map((e) => e.id)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(log.missingIds()).toEqual([]);
  });

  it("ignores payloads that are not stored events", () => {
    const log = new EventLog();
    expect(log.add({ status_update: true, type: "info", id: "STATUS$READY", message: "ready" })).toBe("invalid");
    expect(log.add({ error: true, message: "bad" })).toBe("invalid");
    expect(log.add({ id: "3", action: "message" })).toBe("invalid");
    expect(log.add({ id: 2.5, action: "message" })).toBe("invalid");
    expect(log.add({ id: 1 })).toBe("invalid");
    expect(log.size).toBe(0);
  });
});

describe("agent state", () => {
  it("follows the newest agent_state_changed, with the error reason", () => {
    const log = new EventLog();
    expect(log.agentState).toBeNull();
    log.addMany([stateChanged(0, "loading"), userMessage(1, "go"), stateChanged(2, "running")]);
    expect(log.agentState).toBe("running");
    log.add(stateChanged(3, "error", "RuntimeError: Agent reached maximum iteration."));
    expect(log.agentState).toBe("error");
    expect(log.agentStateReason).toMatch(/maximum iteration/);
    // An older state back-filled later does not win.
    log.add(stateChanged(1.0 + 0, "paused")); // duplicate id 1 → ignored
    expect(log.agentState).toBe("error");
  });

  it("an id-less state (server closing the conversation) applies until a newer stored one", () => {
    const log = new EventLog();
    log.add(stateChanged(4, "running"));
    expect(log.applyLiveState({ observation: "agent_state_changed", extras: { agent_state: "stopped", reason: "" } })).toBe(true);
    expect(log.agentState).toBe("stopped");
    log.add(stateChanged(2, "paused")); // older: ignored
    expect(log.agentState).toBe("stopped");
    log.add(stateChanged(7, "awaiting_user_input"));
    expect(log.agentState).toBe("awaiting_user_input");
  });

  it("derive(): a conversation's start-up states (loading, then waiting for input) are not work", () => {
    const log = new EventLog();
    log.add(stateChanged(0, "loading"));
    let d = derive(log);
    expect(d.busy).toBe(false);
    expect(stateLabel(d.agentState)).toBe("starting");
    log.addMany([changeState(1, "awaiting_user_input", "environment"), stateChanged(2, "awaiting_user_input")]);
    d = derive(log);
    expect(d.busy).toBe(false);
    expect(stateLabel(d.agentState)).toBe("waiting for you");
    // The server announces awaiting_user_confirmation before the action it is about.
    log.addMany([userMessage(3, "go"), stateChanged(4, "running"), stateChanged(5, "awaiting_user_confirmation")]);
    log.add(runAction(6, "rm -rf build", "agent", { confirmation_state: "awaiting_confirmation" }));
    expect(derive(log).pendingConfirmation?.id).toBe(6);
  });

  it("derive(): busy, confirmation, task list, metrics, running command", () => {
    const log = new EventLog();
    log.addMany([
      userMessage(0, "go"),
      stateChanged(1, "running"),
      taskTracking(2, [{ id: "1", title: "a", status: "todo" }]),
      agentMessage(3, "thinking out loud"),
      runAction(4, "rm -rf build", "agent", { confirmation_state: "awaiting_confirmation" }),
    ]);
    let d = derive(log);
    expect(d.busy).toBe(true);
    expect(d.pendingConfirmation).toBeNull(); // state is not awaiting confirmation yet
    expect(d.taskList).toEqual([{ id: "1", title: "a", status: "todo" }]);
    expect(d.metrics?.accumulated_cost).toBe(0.0123);
    expect(d.runningCommand).toBeNull(); // an action awaiting confirmation is not running
    log.add(stateChanged(5, "awaiting_user_confirmation"));
    d = derive(log);
    expect(d.busy).toBe(false);
    expect(d.pendingConfirmation?.id).toBe(4);
    // Confirmed: the same action again with a new id, then its output.
    log.addMany([changeState(6, "user_confirmed"), runAction(7, "rm -rf build"), stateChanged(8, "running")]);
    d = derive(log);
    expect(d.pendingConfirmation).toBeNull();
    expect(d.runningCommand?.id).toBe(7);
    log.add(runObs(9, 7, ""));
    expect(derive(log).runningCommand).toBeNull();
    // A later task_tracking observation replaces the plan.
    log.add({ id: 10, source: "agent", observation: "task_tracking", cause: 2, content: "", extras: { command: "plan", task_list: [{ id: "1", title: "a", status: "done" }] } });
    expect(derive(log).taskList?.[0].status).toBe("done");
  });

  it("exitCode reads extras.metadata.exit_code (and the legacy extras.exit_code)", () => {
    expect(exitCode(runObs(1, 0, "", 2))).toBe(2);
    expect(exitCode({ id: 1, observation: "run", extras: { exit_code: -1 } })).toBe(-1);
    expect(exitCode(undefined)).toBeNull();
  });
});

describe("buildChatItems: grouping observations under their actions", () => {
  it("puts each observation under the action named by its cause", () => {
    const items = buildChatItems([
      userMessage(0, "edit a.py"),
      runAction(1, "ls -la"),
      editAction(2),
      runObs(3, 1, "a.py\n"),
      editObs(4, 2),
      agentMessage(5, "Done"),
    ]);
    expect(items.map((i) => i.kind)).toEqual(["message", "action", "action", "message"]);
    const run = items[1] as Extract<(typeof items)[number], { kind: "action" }>;
    expect(run.action.id).toBe(1);
    expect(run.observation?.id).toBe(3);
    expect(run.ids).toEqual([1, 3]);
    const edit = items[2] as Extract<(typeof items)[number], { kind: "action" }>;
    expect(edit.observation?.extras?.diff).toContain("+print(2)");
  });

  it("keeps further observations of the same action, and orphans on their own", () => {
    const items = buildChatItems([runAction(1, "sleep 100"), runObs(2, 1, "partial", -1), errorObs(3, "stopped", 1), errorObs(4, "LLM failed")]);
    const run = items[0] as any;
    expect(run.observation.id).toBe(2);
    expect(run.more.map((e: any) => e.id)).toEqual([3]);
    expect(items[1]).toMatchObject({ kind: "observation", ids: [4] });
  });

  it("hides system, state changes, think observations and a person's terminal commands, but keeps their ids", () => {
    const events = [
      systemAction(0),
      stateChanged(1, "loading"),
      userMessage(2, "hi"),
      changeState(3, "running"),
      stateChanged(4, "running"),
      runAction(5, "ls", "user"),
      runObs(6, 5, "x", 0, "user"),
      thinkAction(7, "plan"),
      thinkObs(8, 7),
      finishAction(9, "All done"),
    ];
    const items = buildChatItems(events);
    expect(items.map((i) => i.kind)).toEqual(["hidden", "message", "hidden", "action", "message"]);
    expect(items[0].ids).toEqual([0, 1]);
    expect(items[2].ids).toEqual([3, 4, 5, 6]);
    expect(items[3].ids).toEqual([7, 8]); // the think observation stays with its action
    expect(isHiddenInChat(runAction(1, "ls", "user"))).toBe(true);
    expect(isHiddenInChat(runAction(1, "ls", "agent"))).toBe(false);
  });

  it("hides an awaiting-confirmation action once a later action replaced it", () => {
    const pending = runAction(3, "rm x", "agent", { confirmation_state: "awaiting_confirmation" });
    let items = buildChatItems([userMessage(0, "go"), pending]);
    expect(items.map((i) => i.kind)).toEqual(["message", "action"]);
    items = buildChatItems([userMessage(0, "go"), pending, changeState(4, "user_confirmed"), runAction(5, "rm x"), runObs(6, 5, "")]);
    expect(items.map((i) => i.kind)).toEqual(["message", "hidden", "action"]);
    expect((items[2] as any).observation.id).toBe(6);
  });

  it("shows every event id exactly once, whatever the mix", () => {
    const events = [
      systemAction(0),
      userMessage(1, "a"),
      runAction(2, "ls"),
      runAction(3, "pwd", "user"),
      runObs(4, 3, "/", 0, "user"),
      runObs(5, 2, "x"),
      errorObs(6, "oops", 99),
      stateChanged(7, "awaiting_user_input"),
      editAction(8),
      editObs(9, 8),
      finishAction(10, "ok"),
    ];
    const ids = allIds(buildChatItems(events));
    expect([...ids].sort((a, b) => a - b)).toEqual(events.map((e) => e.id));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("buildTerminalEntries", () => {
  it("lists every command (agent's and person's) with its output, skipping hidden ones", () => {
    const entries = buildTerminalEntries([
      runAction(0, "ls", "user"),
      runAction(1, "make", "agent"),
      runObs(2, 0, "a b", 0, "user"),
      runAction(3, "secret", "agent", { hidden: true }),
      runObs(4, 1, "built", 0),
      runAction(5, "rm -rf /", "agent", { confirmation_state: "awaiting_confirmation" }),
      { id: 6, observation: "user_rejected", cause: 1, content: "rejected" },
    ]);
    expect(entries.map((e) => e.action?.args?.command)).toEqual(["ls", "make"]);
    expect(entries[0].observations.map((o) => o.id)).toEqual([2]);
    expect(entries[1].observations.map((o) => o.id)).toEqual([4, 6]);
  });
});
