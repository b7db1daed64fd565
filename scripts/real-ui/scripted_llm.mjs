// A scripted OpenAI-compatible LLM for the real-UI journey.
//
// It answers POST <any prefix>/chat/completions (streamed or not) by replaying the
// scenario named in the conversation: the last user message that contains
// "[scenario:NAME]" selects scenarios/NAME.json, and the number of assistant turns
// after that message selects the step. A step is one of
//   {"tool": "execute_bash", "args": {...}, "text"?: "...", "delayMs"?: 1500}
//   {"text": "plain answer"}
//   {"http_status": 500, "error": "message"}        (answered with that HTTP status)
// Past the last step the last step is repeated. "{{PAGE_URL}}" in a step is replaced by
// the URL of a small HTML page this server also serves (GET /page), for the fetch tool.
// Requests without tools (conversation titles) get "Scripted title: NAME".
//
// Every request is recorded (path, model, Authorization header, scenario, step) so a
// test can see which model, key and base URL the agent really used: GET /requests.
//
// CLI:    node scripted_llm.mjs [--port 18100] [--scenarios DIR]
// module: const llm = await startScriptedLlm({ port, scenariosDir }); llm.url, llm.requests, llm.close()
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

const PAGE_HTML = "<html><head><title>Journey test page</title></head><body>" +
  "<h1>Scripted page</h1><p>The answer is <b>42</b> (page-marker-5521).</p></body></html>";

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === "string" ? p : p?.text ?? "")).join("\n");
  return "";
}

export async function startScriptedLlm({ port = 0, host = "127.0.0.1", scenariosDir = path.join(HERE, "scenarios") } = {}) {
  const requests = [];
  let seq = 0;
  let pageUrl = "";
  const loadScenario = (name) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(scenariosDir, `${name}.json`), "utf8"));
    } catch {
      return [{ tool: "finish", args: { message: `Unknown scenario ${name}.` } }];
    }
  };

  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const url = new URL(req.url, "http://x");
      if (req.method === "GET" && url.pathname === "/page") {
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
        return res.end(PAGE_HTML);
      }
      if (req.method === "GET" && url.pathname === "/requests") {
        res.writeHead(200, { "Content-Type": "application/json" });
        return res.end(JSON.stringify(requests));
      }
      if (req.method === "GET" && url.pathname.endsWith("/models")) {
        res.writeHead(200, { "Content-Type": "application/json" });
        return res.end(JSON.stringify({ object: "list", data: [{ id: "scripted", object: "model" }] }));
      }
      if (req.method !== "POST" || !url.pathname.endsWith("/chat/completions")) {
        res.writeHead(404, { "Content-Type": "application/json" });
        return res.end(JSON.stringify({ error: { message: "not found" } }));
      }
      let payload;
      try { payload = JSON.parse(body); } catch { res.writeHead(400); return res.end(); }
      const messages = Array.isArray(payload.messages) ? payload.messages : [];
      const hasTools = Array.isArray(payload.tools) && payload.tools.length > 0;
      // the scenario: last user message naming one
      let scenario = null;
      let at = -1;
      messages.forEach((m, i) => {
        if (m.role !== "user") return;
        const all = [...textOf(m.content).matchAll(/\[scenario:([\w-]+)\]/g)];
        if (all.length) { scenario = all[all.length - 1][1]; at = i; }
      });
      const rec = {
        t: new Date().toISOString(), path: url.pathname, model: payload.model ?? null,
        authorization: req.headers.authorization ?? null, stream: !!payload.stream, tools: hasTools,
        scenario, n_messages: messages.length, step: null,
      };
      requests.push(rec);
      let step;
      if (!hasTools) {
        step = { text: scenario ? `Scripted title: ${scenario}` : "Scripted title" };
      } else if (!scenario) {
        step = { tool: "finish", args: { message: "No [scenario:NAME] in the conversation." } };
      } else {
        const n = messages.slice(at + 1).filter((m) => m.role === "assistant").length;
        const steps = loadScenario(scenario);
        rec.step = Math.min(n, steps.length - 1);
        step = JSON.parse(JSON.stringify(steps[rec.step]).replaceAll("{{PAGE_URL}}", pageUrl));
      }
      if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
      if (step.http_status) {
        res.writeHead(step.http_status, { "Content-Type": "application/json" });
        return res.end(JSON.stringify({ error: { message: step.error || "scripted error", type: "server_error" } }));
      }
      const id = `call_${++seq}`;
      const toolCalls = step.tool
        ? [{ id, type: "function", function: { name: step.tool, arguments: JSON.stringify(step.args ?? {}) } }]
        : undefined;
      const usage = { prompt_tokens: 1200, completion_tokens: 80, total_tokens: 1280 };
      const model = payload.model ?? "scripted";
      const created = Math.floor(Date.now() / 1000);
      if (payload.stream) {
        res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
        const send = (o) => res.write(`data: ${JSON.stringify(o)}\n\n`);
        const base = { id: `chatcmpl-${seq}`, object: "chat.completion.chunk", created, model };
        send({ ...base, choices: [{ index: 0, delta: { role: "assistant", content: step.text ?? "" }, finish_reason: null }] });
        if (toolCalls) send({ ...base, choices: [{ index: 0, delta: { tool_calls: toolCalls.map((t, i) => ({ index: i, ...t })) }, finish_reason: null }] });
        send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: toolCalls ? "tool_calls" : "stop" }] });
        send({ ...base, choices: [], usage });
        return res.end("data: [DONE]\n\n");
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({
        id: `chatcmpl-${seq}`, object: "chat.completion", created, model,
        choices: [{ index: 0, message: { role: "assistant", content: step.text ?? null, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
          finish_reason: toolCalls ? "tool_calls" : "stop" }],
        usage,
      }));
    });
  });
  await new Promise((resolve, reject) => { server.once("error", reject); server.listen(port, host, resolve); });
  const actual = server.address().port;
  pageUrl = `http://${host}:${actual}/page`;
  return {
    port: actual, url: `http://${host}:${actual}/v1`, pageUrl, requests,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (n, d) => { const i = process.argv.indexOf(`--${n}`); return i > 0 ? process.argv[i + 1] : d; };
  const llm = await startScriptedLlm({ port: Number(arg("port", "18100")), scenariosDir: arg("scenarios", path.join(HERE, "scenarios")) });
  console.log(JSON.stringify({ url: llm.url, page: llm.pageUrl }));
}
