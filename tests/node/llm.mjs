// A scripted OpenAI-compatible LLM (POST /v1/chat/completions, plain or streamed) for
// the agent scenarios of the Node tests. `answer(request, n)` decides each answer of a
// request offering tools (n counts them from 0): { text?, tool?, args?, delayMs? }.
// Requests without tools (titles) get a short plain answer at once.

import http from "node:http";

export async function startLlm(answer) {
  const requests = [];
  let seq = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      let payload;
      try {
        payload = JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      let step = { text: "A title" };
      if (Array.isArray(payload.tools) && payload.tools.length > 0) {
        const n = requests.length;
        requests.push(payload);
        step = await answer(payload, n);
      }
      if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
      if (res.destroyed || req.socket.destroyed) return;
      seq += 1;
      const toolCalls = step.tool
        ? [{ id: `call_${seq}`, type: "function", function: { name: step.tool, arguments: JSON.stringify(step.args ?? {}) } }]
        : undefined;
      const usage = { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 };
      const base = { id: `chatcmpl-${seq}`, created: Math.floor(Date.now() / 1000), model: payload.model ?? "scripted" };
      if (payload.stream) {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        const send = (o) => res.write(`data: ${JSON.stringify({ ...base, object: "chat.completion.chunk", ...o })}\n\n`);
        send({ choices: [{ index: 0, delta: { role: "assistant", content: step.text ?? "" }, finish_reason: null }] });
        if (toolCalls) send({ choices: [{ index: 0, delta: { tool_calls: toolCalls.map((t, i) => ({ index: i, ...t })) }, finish_reason: null }] });
        send({ choices: [{ index: 0, delta: {}, finish_reason: toolCalls ? "tool_calls" : "stop" }] });
        send({ choices: [], usage });
        res.end("data: [DONE]\n\n");
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          ...base,
          object: "chat.completion",
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: step.text ?? null, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
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
    env: { LLM_MODEL: "openai/scripted", LLM_API_KEY: "sk-scripted", LLM_BASE_URL: `http://127.0.0.1:${port}/v1` },
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** The text of a chat message's content (string or parts). */
export function textOf(m) {
  if (typeof m?.content === "string") return m.content;
  if (Array.isArray(m?.content)) return m.content.map((p) => p.text ?? "").join("\n");
  return "";
}

/** Whether the request's messages include a user message with this text. */
export function sawUser(request, text) {
  return request.messages.some((m) => m.role === "user" && textOf(m).includes(text));
}
