// A scripted OpenAI-compatible LLM (POST /v1/chat/completions, streamed or not) for the
// browser tests: step N of the script answers the request whose history holds N
// assistant turns. Requests without tools (title generation) get a short plain answer.

import http from "node:http";

/**
 * script: the steps [{ text?: string, tool?: string, args?: object, delayMs?: number,
 * textPieces?: string[], pieceDelayMs?: number }] (textPieces: a streamed answer's text,
 * sent piece by piece),
 * or a function (first user message text) => steps, to script several conversations.
 * Returns { url (base URL ending in /v1), requests, close }.
 */
export async function startScriptedLlm(script) {
  const requests = [];
  let callSeq = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      if (req.method === "GET" && req.url === "/page") {
        // A page for the agent's fetch tool.
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
        res.end("<html><head><title>Test page</title></head><body><h1>Scripted page</h1><p>The answer is <b>42</b>.</p></body></html>");
        return;
      }
      if (req.method !== "POST" || !req.url.endsWith("/chat/completions")) {
        res.writeHead(404, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { message: "not found" } }));
        return;
      }
      let payload;
      try {
        payload = JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      requests.push(payload);
      const messages = Array.isArray(payload.messages) ? payload.messages : [];
      let step;
      if (!Array.isArray(payload.tools) || payload.tools.length === 0) {
        step = { text: "Scripted conversation" };
      } else {
        const n = messages.filter((m) => m.role === "assistant").length;
        const firstUser = messages.find((m) => m.role === "user");
        const text = typeof firstUser?.content === "string"
          ? firstUser.content
          : Array.isArray(firstUser?.content)
            ? firstUser.content.map((p) => p.text ?? "").join("\n")
            : "";
        const steps = typeof script === "function" ? script(text) : script;
        step = steps[Math.min(n, steps.length - 1)];
      }
      if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
      const id = `call_${++callSeq}`;
      const toolCalls = step.tool
        ? [{ id, type: "function", function: { name: step.tool, arguments: JSON.stringify(step.args ?? {}) } }]
        : undefined;
      const usage = { prompt_tokens: 1200, completion_tokens: 80, total_tokens: 1280 };
      const model = payload.model ?? "scripted";
      const created = Math.floor(Date.now() / 1000);
      if (payload.stream) {
        res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
        const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
        const base = { id: `chatcmpl-${callSeq}`, object: "chat.completion.chunk", created, model };
        if (Array.isArray(step.textPieces)) {
          // Written as a model writes: one piece at a time.
          for (const piece of step.textPieces) {
            send({ ...base, choices: [{ index: 0, delta: { role: "assistant", content: piece }, finish_reason: null }] });
            await new Promise((r) => setTimeout(r, step.pieceDelayMs ?? 300));
          }
        } else {
          send({ ...base, choices: [{ index: 0, delta: { role: "assistant", content: step.text ?? "" }, finish_reason: null }] });
        }
        if (toolCalls) {
          send({
            ...base,
            choices: [{ index: 0, delta: { tool_calls: toolCalls.map((t, i) => ({ index: i, ...t })) }, finish_reason: null }],
          });
        }
        send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: toolCalls ? "tool_calls" : "stop" }] });
        send({ ...base, choices: [], usage });
        res.end("data: [DONE]\n\n");
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          id: `chatcmpl-${callSeq}`,
          object: "chat.completion",
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: step.text ?? step.textPieces?.join("") ?? null, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
              finish_reason: toolCalls ? "tool_calls" : "stop",
            },
          ],
          usage,
        }),
      );
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1`,
    pageUrl: `http://127.0.0.1:${port}/page`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
