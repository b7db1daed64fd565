"""python-socketio (the client most Python tools use) against the real binary."""

import os
import pathlib
import queue
import re
import subprocess
import tempfile
import uuid

import pytest
import requests
import socketio

BIN = os.environ.get(
    "OPENHANDS_BIN",
    str(pathlib.Path(__file__).resolve().parents[2] / "target" / "debug" / "openhands-server"),
)


@pytest.fixture
def server():
    tmp = tempfile.TemporaryDirectory()
    env = {k: v for k, v in os.environ.items() if k not in ("SESSION_API_KEY", "LLM_API_KEY", "LLM_MODEL")}
    env.update(FILE_STORE_PATH=os.path.join(tmp.name, "store"), LOG_LEVEL="warn")
    proc = subprocess.Popen(
        [BIN, "--host", "127.0.0.1", "--port", "0"], cwd=tmp.name, env=env, stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    port = re.search(r"listening on http://[\d.]+:(\d+)", line).group(1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
    tmp.cleanup()


def client(url, cid, latest, transports=None):
    events = queue.Queue()
    sio = socketio.Client(reconnection=False)
    sio.on("oh_event", lambda data: events.put(data))
    sio.connect(
        f"{url}?conversation_id={cid}&latest_event_id={latest}&providers_set=github",
        transports=transports,
        socketio_path="socket.io",
        wait_timeout=10,
    )
    return sio, events


def next_stored(events):
    while True:
        e = events.get(timeout=10)
        if isinstance(e.get("id"), int):
            return e


# Every new conversation stores three events as it opens: agent_state_changed loading,
# the environment's change_agent_state and agent_state_changed awaiting_user_input.
STARTUP_EVENTS = 3


def wait_ready(events):
    """Waits until the agent is ready for input, as the OpenHands UI does."""
    while True:
        e = next_stored(events)
        if e.get("observation") == "agent_state_changed" and e["extras"]["agent_state"] == "awaiting_user_input":
            return e


def next_user_message(events):
    """The next stored user message (the agent's state events are skipped)."""
    while True:
        e = next_stored(events)
        if e.get("action") == "message" and e.get("source") == "user":
            return e


@pytest.mark.parametrize("transports", [None, ["websocket"], ["polling"]])
def test_python_socketio_sends_and_receives(server, transports):
    cid = uuid.uuid4().hex
    sio, events = client(server, cid, -1, transports)
    wait_ready(events)
    sio.emit("oh_user_action", {"action": "message", "args": {"content": "from python"}})
    sio.emit("oh_action", {"type": "message", "source": "user", "message": "legacy alias"})
    first, second = next_user_message(events), next_user_message(events)
    assert (first["id"], first["args"]["content"]) == (STARTUP_EVENTS, "from python")
    assert second["args"]["content"] == "legacy alias"
    assert list(first.keys()) == ["id", "timestamp", "source", "message", "action", "args"]
    sio.disconnect()

    # Reconnecting after id 0 replays exactly what followed it, then live events.
    sio, events = client(server, cid, 0, transports)
    requests.post(f"{server}/api/conversations/{cid}/message", json={"message": "live"}, timeout=10)
    seen = []
    while not seen or seen[-1].get("args", {}).get("content") != "live":
        seen.append(next_stored(events))
    assert [e["id"] for e in seen] == list(range(1, len(seen) + 1)), "dense, from K+1, none twice"
    assert seen[-1]["id"] > second["id"]
    sio.disconnect()


def test_python_socketio_gets_connect_error_without_conversation_id(server):
    sio = socketio.Client(reconnection=False)
    errors = queue.Queue()
    sio.on("connect_error", lambda data: errors.put(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(f"{server}?latest_event_id=-1", transports=["websocket"], wait_timeout=5)
    assert errors.get(timeout=5) == {"message": "No conversation_id in query params"}
