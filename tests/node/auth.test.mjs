// SESSION_API_KEY: socket.io refusals are clean CONNECT_ERRORs; REST needs the header.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import {
  closeSockets,
  connect,
  connectError,
  connectReady,
  http,
  newConversationId,
  sendMessage,
  startServer,
  STARTUP_EVENTS,
  waitForMessage,
} from "./harness.mjs";

const T = { timeout: 20000 };
const KEY = "secret";

describe("with SESSION_API_KEY set", () => {
  let server;
  before(async () => {
    server = await startServer({ SESSION_API_KEY: KEY });
  });
  afterEach(() => closeSockets());
  after(async () => {
    closeSockets();
    await server?.stop();
  });

  for (const transports of [["websocket"], ["polling", "websocket"]]) {
    it(`socket without a key is refused with a connect_error within 5 s (transports ${transports})`, T, async () => {
      const t0 = Date.now();
      const err = await connectError(
        server.url,
        { conversation_id: newConversationId(), latest_event_id: -1 },
        { transports, connectTimeout: 5000 },
      );
      assert.equal(typeof err.message, "string");
      assert.ok(err.message.length > 0, "connect_error has a message");
      assert.notEqual(err.message, "websocket error", "refused by the server, not a transport failure");
      assert.notEqual(err.message, "xhr poll error", "refused by the server, not a transport failure");
      assert.ok(Date.now() - t0 < 5000);
    });
  }

  it("socket with session_api_key in the query connects and works", T, async () => {
    const s = await connectReady(
      server.url,
      { conversation_id: newConversationId(), latest_event_id: -1, session_api_key: KEY },
      { transports: ["websocket"] },
    );
    sendMessage(s, "authorized by query");
    const ev = await waitForMessage(s, "authorized by query");
    assert.equal(ev.id, STARTUP_EVENTS);
  });

  it("socket with the key in the Socket.IO auth payload connects and works", T, async () => {
    const s = await connectReady(
      server.url,
      { conversation_id: newConversationId(), latest_event_id: -1 },
      { transports: ["websocket"], auth: { session_api_key: KEY } },
    );
    sendMessage(s, "authorized by auth payload");
    const ev = await waitForMessage(s, "authorized by auth payload");
    assert.equal(ev.id, STARTUP_EVENTS);
  });

  it("socket with a wrong key is refused with 'invalid_session_api_key'", T, async () => {
    for (const wrong of ["wrong", "null"]) {
      const err = await connectError(
        server.url,
        { conversation_id: newConversationId(), latest_event_id: -1, session_api_key: wrong },
        { transports: ["websocket"] },
      );
      assert.equal(err.message, "invalid_session_api_key", `key ${JSON.stringify(wrong)}`);
    }
    const err = await connectError(
      server.url,
      { conversation_id: newConversationId(), latest_event_id: -1 },
      { transports: ["websocket"], auth: { session_api_key: "wrong" } },
    );
    assert.equal(err.message, "invalid_session_api_key", "wrong key in the auth payload");
  });

  it("REST needs X-Session-API-Key: 401 with a JSON body without it, 200 with it", T, async () => {
    const no = await http("GET", `${server.url}/api/conversations`);
    assert.equal(no.status, 401);
    assert.notEqual(no.json, undefined, `401 body is JSON: ${no.text}`);
    const wrong = await http("GET", `${server.url}/api/conversations`, { headers: { "X-Session-API-Key": "wrong" } });
    assert.equal(wrong.status, 401);
    assert.notEqual(wrong.json, undefined, `401 body is JSON: ${wrong.text}`);
    const yes = await http("GET", `${server.url}/api/conversations`, { headers: { "X-Session-API-Key": KEY } });
    assert.equal(yes.status, 200, yes.text);
    assert.ok(Array.isArray(yes.json?.results), `conversation list: ${yes.text}`);
  });

  it("health routes need no key", T, async () => {
    for (const p of ["/api/health", "/alive", "/health"]) {
      const res = await http("GET", `${server.url}${p}`);
      assert.equal(res.status, 200, `${p}: ${res.text}`);
    }
  });
});
