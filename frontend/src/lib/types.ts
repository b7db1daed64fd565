// Wire shapes of the OpenHands V0 protocol (docs/protocol.md), as loosely as the
// UI needs them: every field the UI reads is optional, unknown fields are kept.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A stored event: an action or an observation with an integer id. */
export interface OHEvent {
  id: number;
  timestamp?: string;
  source?: string; // "user" | "agent" | "environment"
  message?: string;
  cause?: number | null;
  action?: string;
  observation?: string;
  args?: Record<string, any>;
  content?: string;
  extras?: Record<string, any>;
  success?: boolean;
  llm_metrics?: LlmMetrics | null;
  tool_call_metadata?: Record<string, any> | null;
  timeout?: number | null;
  [k: string]: unknown;
}

export interface LlmMetrics {
  accumulated_cost?: number;
  max_budget_per_task?: number | null;
  accumulated_token_usage?: {
    model?: string;
    prompt_tokens?: number;
    completion_tokens?: number;
    context_window?: number;
    per_turn_token?: number;
  };
}

/** `{"status_update": true, ...}`: not stored, no integer id. */
export interface StatusUpdate {
  status_update: true;
  type?: string; // "info" | "error"
  id?: string; // i18n key such as STATUS$READY
  message?: string;
  conversation_title?: string;
  [k: string]: unknown;
}

/** `{"error": true, "message": ...}` notice for the sender. */
export interface ErrorNotice {
  error: true | string;
  message?: string;
  error_code?: number;
  [k: string]: unknown;
}

export type AgentState =
  | "loading"
  | "init"
  | "running"
  | "awaiting_user_input"
  | "paused"
  | "stopped"
  | "finished"
  | "rejected"
  | "error"
  | "awaiting_user_confirmation"
  | "user_confirmed"
  | "user_rejected"
  | "rate_limited";

export interface TaskItem {
  id?: string;
  title?: string;
  status?: string; // todo | in_progress | done
  notes?: string;
}

export interface ConversationInfo {
  conversation_id: string;
  title: string;
  last_updated_at?: string | null;
  created_at?: string | null;
  status?: string; // STARTING | RUNNING | STOPPED | ARCHIVED | ERROR
  runtime_status?: string | null;
  url?: string | null;
  session_api_key?: string | null;
  num_connections?: number;
  trigger?: string | null;
  /** LLM usage of the conversation (upstream's metadata names). */
  llm_model?: string | null;
  accumulated_cost?: number;
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

export interface Settings {
  language?: string | null;
  agent?: string | null;
  max_iterations?: number | null;
  security_analyzer?: string | null;
  confirmation_mode?: boolean | null;
  llm_model?: string | null;
  llm_api_key?: string | null;
  llm_base_url?: string | null;
  llm_api_key_set?: boolean;
  [k: string]: unknown;
}

export function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A stored event has an integer id and is an action or an observation. */
export function isStoredEvent(v: unknown): v is OHEvent {
  return (
    isObject(v) &&
    Number.isInteger(v.id) &&
    (v.id as number) >= 0 &&
    (typeof v.action === "string" || typeof v.observation === "string")
  );
}

export function isStatusUpdate(v: unknown): v is StatusUpdate {
  return isObject(v) && v.status_update === true;
}

export function isErrorNotice(v: unknown): v is ErrorNotice {
  return isObject(v) && "error" in v && !("action" in v) && !("observation" in v) && v.status_update !== true;
}
