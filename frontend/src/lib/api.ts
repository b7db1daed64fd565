// REST client for the routes of docs/protocol.md. Same origin: the binary serves the UI,
// and the Vite dev server proxies /api to it.

import type { ConversationInfo, OHEvent, Settings } from "./types";

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public body?: unknown,
  ) {
    super(message);
  }
}

function messageOf(body: unknown, fallback: string): string {
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    for (const k of ["message", "error", "detail"]) {
      if (typeof b[k] === "string" && b[k]) return b[k] as string;
    }
  }
  if (typeof body === "string" && body) return body;
  return fallback;
}

async function request<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, ...init });
  const text = await res.text();
  let data: unknown = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    throw new ApiError(res.status, messageOf(data, `${method} ${path} failed: HTTP ${res.status}`), data);
  }
  return data as T;
}

/** What a server with nothing saved and no LLM configured stands for. */
const NO_SETTINGS: Settings = {
  llm_model: null,
  llm_base_url: null,
  llm_api_key_set: false,
  search_api_key_set: false,
  confirmation_mode: false,
  max_iterations: null,
  agent: "CodeActAgent",
  language: "en",
};

const conv = (id: string) => `/api/conversations/${encodeURIComponent(id)}`;

export interface ConversationPage {
  results: ConversationInfo[];
  next_page_id: string | null;
}

export const api = {
  listConversations(pageId?: string | null, limit = 20) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (pageId) q.set("page_id", pageId);
    return request<ConversationPage>("GET", `/api/conversations?${q}`);
  },
  getConversation(id: string) {
    return request<ConversationInfo>("GET", conv(id));
  },
  /** A new conversation; with `repository`, that repository is cloned into its workspace first. */
  createConversation(initialUserMsg: string | null, repository?: { repository: string; branch: string }) {
    const repo = repository?.repository.trim();
    return request<{ status: string; conversation_id: string; conversation_status?: string; message?: string }>(
      "POST",
      "/api/conversations",
      {
        initial_user_msg: initialUserMsg || null,
        ...(repo ? { repository: repo, selected_branch: repository?.branch.trim() || null } : {}),
      },
    );
  },
  renameConversation(id: string, title: string) {
    return request<boolean>("PATCH", conv(id), { title });
  },
  deleteConversation(id: string) {
    return request<boolean>("DELETE", conv(id));
  },
  startConversation(id: string) {
    return request<{ status: string; conversation_status?: string }>("POST", `${conv(id)}/start`, {});
  },
  stopConversation(id: string) {
    return request<{ status: string; message?: string }>("POST", `${conv(id)}/stop`);
  },
  /** Stored events with ids in [startId, endId]; `reverse`: the newest of them first. */
  events(id: string, startId: number, endId?: number, limit = 100, reverse = false) {
    const q = new URLSearchParams({ start_id: String(startId), limit: String(limit) });
    if (endId !== undefined) q.set("end_id", String(endId));
    if (reverse) q.set("reverse", "true");
    return request<{ events: OHEvent[]; has_more: boolean }>("GET", `${conv(id)}/events?${q}`);
  },
  listFiles(id: string, path?: string) {
    const q = path ? `?${new URLSearchParams({ path })}` : "";
    return request<string[]>("GET", `${conv(id)}/list-files${q}`);
  },
  selectFile(id: string, file: string) {
    return request<{ code: string }>("GET", `${conv(id)}/select-file?${new URLSearchParams({ file })}`);
  },
  uploadFiles(id: string, files: File[]) {
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    return request<{ uploaded_files: string[]; skipped_files: { name: string; reason: string }[] }>(
      "POST",
      `${conv(id)}/upload-files`,
      form,
    );
  },
  zipUrl(id: string) {
    return `${conv(id)}/zip-directory`;
  },
  gitChanges(id: string) {
    return request<{ status: string; path: string }[]>("GET", `${conv(id)}/git/changes`);
  },
  gitDiff(id: string, path: string) {
    return request<{ modified: string; original: string }>("GET", `${conv(id)}/git/diff?${new URLSearchParams({ path })}`);
  },
  getSettings() {
    // 404: nothing saved and no LLM in the server's configuration; the defaults apply.
    return request<Settings>("GET", "/api/settings").catch((e) => {
      if (e instanceof ApiError && e.status === 404) return { ...NO_SETTINGS };
      throw e;
    });
  },
  saveSettings(s: Partial<Settings>) {
    return request<{ message: string }>("POST", "/api/settings", s);
  },
  models() {
    return request<string[]>("GET", "/api/options/models");
  },
  agents() {
    return request<string[]>("GET", "/api/options/agents");
  },
};
