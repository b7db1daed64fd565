// Per-tab cache of a conversation's events (sessionStorage), so that reloading the page
// resumes with `latest_event_id` instead of replaying everything. The server stays the
// source of truth: a cache whose last event no longer matches the server's is dropped.

import type { OHEvent } from "./types";

const PREFIX = "openhands:events:";
/** Bigger logs are not cached (sessionStorage holds ~5 MB per origin). */
export const MAX_CACHE_CHARS = 2_000_000;

export interface KV {
  getItem(k: string): string | null;
  setItem(k: string, v: string): void;
  removeItem(k: string): void;
}

function storage(): KV | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}

export function loadCachedEvents(conversationId: string, kv: KV | null = storage()): OHEvent[] {
  if (!kv) return [];
  try {
    const raw = kv.getItem(PREFIX + conversationId);
    if (!raw) return [];
    const parsed = JSON.parse(raw);
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

/** Saves the events; returns false (and removes any old copy) when they are too big. */
export function saveCachedEvents(conversationId: string, events: OHEvent[], kv: KV | null = storage()): boolean {
  if (!kv) return false;
  const key = PREFIX + conversationId;
  try {
    const raw = JSON.stringify(events);
    if (raw.length > MAX_CACHE_CHARS) {
      kv.removeItem(key);
      return false;
    }
    kv.setItem(key, raw);
    return true;
  } catch {
    try {
      kv.removeItem(key);
    } catch {
      /* ignore */
    }
    return false;
  }
}

export function dropCachedEvents(conversationId: string, kv: KV | null = storage()) {
  try {
    kv?.removeItem(PREFIX + conversationId);
  } catch {
    /* ignore */
  }
}

/** Same stored event? (id, kind and timestamp: enough to tell a replaced store.) */
export function sameEvent(a: OHEvent | undefined, b: OHEvent | undefined): boolean {
  return (
    !!a &&
    !!b &&
    a.id === b.id &&
    a.timestamp === b.timestamp &&
    a.action === b.action &&
    a.observation === b.observation
  );
}
