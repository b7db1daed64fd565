// Output as it happens (`oh_output`, see docs/protocol.md "Live output"): the growing
// output of running commands and cells, and the model's answer while it is written.
// It is a preview only: the stored observation (or the agent's event) replaces it.

import { isObject, type OHEvent } from "./types";

/** Most characters kept per stream (the newest). */
const MAX_TEXT = 200_000;

export interface LiveText {
  text: string;
  /** The server has sent the stream's last message. */
  done: boolean;
}

interface Stream extends LiveText {
  seq: number;
}

/** The live output of one conversation. */
export class LiveOutput {
  /** Bumped on every change. */
  version = 0;
  private actions = new Map<number, Stream>();
  /** Actions whose observation arrived: later output for them is dropped. */
  private settled = new Set<number>();
  private thoughtStream: (Stream & { after: number }) | null = null;
  private listeners = new Set<() => void>();

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed() {
    this.version++;
    for (const fn of [...this.listeners]) fn();
  }

  /** The output so far of action `id`, while it runs. */
  forAction(id: number): LiveText | null {
    return this.actions.get(id) ?? null;
  }

  /** The model's answer while it is written. */
  thought(): LiveText | null {
    return this.thoughtStream;
  }

  /** One `oh_output` payload; anything malformed or already had is ignored. */
  receive(p: unknown) {
    if (!isObject(p) || typeof p.chunk !== "string" || !Number.isInteger(p.seq)) return;
    const seq = p.seq as number;
    const done = p.done === true;
    if (p.kind === "thought") {
      if (!Number.isInteger(p.after)) return;
      const after = p.after as number;
      let s = this.thoughtStream;
      if (!s || s.after !== after || (seq === 1 && s.seq >= 1 && s.done)) {
        s = { after, seq: 0, text: "", done: false };
      }
      if (!appendTo(s, seq, p.chunk, done)) return;
      this.thoughtStream = s;
      this.changed();
      return;
    }
    if (!Number.isInteger(p.action_id)) return;
    const id = p.action_id as number;
    if (this.settled.has(id)) return;
    const s = this.actions.get(id) ?? { seq: 0, text: "", done: false };
    if (!appendTo(s, seq, p.chunk, done)) return;
    this.actions.set(id, s);
    this.changed();
  }

  /** A stored event arrived: an observation replaces its action's output, and the
   * agent's next event replaces its answer being written. */
  settle(ev: OHEvent) {
    let changed = false;
    const cause = ev.cause;
    if (typeof ev.observation === "string" && typeof cause === "number") {
      this.settled.add(cause);
      if (this.settled.size > 1000) {
        const oldest = this.settled.values().next().value;
        if (oldest !== undefined) this.settled.delete(oldest);
      }
      changed = this.actions.delete(cause) || changed;
    }
    const t = this.thoughtStream;
    if (t && ev.id > t.after && ev.source === "agent") {
      this.thoughtStream = null;
      changed = true;
    }
    if (changed) this.changed();
  }

  /** Forgets everything (the conversation was left). */
  clear() {
    this.actions.clear();
    this.thoughtStream = null;
    this.changed();
  }
}

/** Adds a chunk in seq order; false if it was already had. A first chunk after a gap
 * (the server kept only the newest output) says that earlier output is not shown. */
function appendTo(s: Stream, seq: number, chunk: string, done: boolean): boolean {
  if (seq <= s.seq) return false;
  if (seq > s.seq + 1) s.text += s.seq === 0 ? "[… earlier output not shown …]\n" : "\n[… some output not shown …]\n";
  s.text += chunk;
  if (s.text.length > MAX_TEXT) s.text = s.text.slice(s.text.length - MAX_TEXT);
  s.seq = seq;
  s.done = s.done || done;
  return true;
}
