//! Output as it happens: a running command's or Python cell's output, and the model's
//! answer while it is written, for the clients that asked for it (`stream_output=true`).
//!
//! Nothing here is stored: the observation (or the agent's event) at the end stays the
//! whole, single result. The feed coalesces what it is given into at most one message
//! per stream every [`INTERVAL`], each chunk at most [`CHUNK_MAX`] bytes (older pending
//! bytes are skipped, with a note), and keeps the last [`HISTORY_MAX`] bytes of every
//! open stream for clients that connect while it runs. See docs/protocol.md, "Live
//! output".

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

use crate::runtime::output_tap::OutputTap;

/// At most one message per stream this often.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// The largest chunk of one message (bytes of output; a note of skipped bytes comes on top).
pub const CHUNK_MAX: usize = 16 * 1024;
/// How much of an open stream is kept for clients that join while it runs.
pub const HISTORY_MAX: usize = 64 * 1024;
/// Messages the live channel holds for a slow client before it resynchronises.
const CHANNEL: usize = 64;

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// A command's terminal output; anchored at its `run` action.
    Command,
    /// A Python cell's printed output; anchored at its `run_ipython` action.
    Ipython,
    /// The model's answer as it is written; anchored at the newest event its request
    /// was built from.
    Thought,
}

/// One open stream's identity: a client gets its messages only after it has been sent
/// the stored event `anchor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamKey {
    pub kind: StreamKind,
    pub anchor: u64,
}

/// A stream of this feed (unique for the feed's lifetime, unlike its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(u64);

/// One `oh_output` message, serialized once for every client.
#[derive(Debug)]
pub struct OutputMessage {
    pub stream: StreamId,
    pub anchor: u64,
    pub seq: u64,
    /// The last message of its stream.
    pub done: bool,
    pub json: Arc<str>,
}

/// The wire shape of an output message.
#[derive(Serialize)]
struct Wire<'a> {
    kind: StreamKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    seq: u64,
    chunk: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    done: bool,
}

struct Stream {
    id: StreamId,
    key: StreamKey,
    next_seq: u64,
    /// Bytes not yet sent (at most `CHUNK_MAX`).
    pending: Vec<u8>,
    /// Bytes dropped from `pending` since the last message.
    skipped: usize,
    last_sent: Option<Instant>,
    /// The newest messages, at most `HISTORY_MAX` bytes of chunks (at least one).
    history: VecDeque<Arc<OutputMessage>>,
    history_bytes: usize,
}

#[derive(Default)]
struct State {
    streams: Vec<Stream>,
    /// The stream of the action the runtime is running, which the tap feeds.
    running: Option<StreamId>,
    /// Whether the flush timer runs.
    ticking: bool,
}

/// A conversation's live output (see the module docs).
pub struct OutputFeed {
    state: Mutex<State>,
    live: broadcast::Sender<Arc<OutputMessage>>,
    next_id: AtomicU64,
    /// Clients connected with `stream_output=true`.
    watchers: AtomicUsize,
    /// Clients of other nodes watch (cluster mode, on the owner).
    watched_elsewhere: AtomicBool,
    /// Messages made (for the benchmark and tests: how much was sent).
    made: AtomicU64,
}

impl OutputFeed {
    pub fn new() -> Arc<Self> {
        let (live, _) = broadcast::channel(CHANNEL);
        Arc::new(OutputFeed {
            state: Mutex::new(State::default()),
            live,
            next_id: AtomicU64::new(1),
            watchers: AtomicUsize::new(0),
            watched_elsewhere: AtomicBool::new(false),
            made: AtomicU64::new(0),
        })
    }

    /// Messages as they are made.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<OutputMessage>> {
        self.live.subscribe()
    }

    /// Counts a client that wants output until the guard is dropped.
    pub fn watch(self: &Arc<Self>) -> WatchGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.clone())
    }

    /// Whether any client wants output (here, or of another node).
    pub fn is_watched(&self) -> bool {
        self.watched_here() || self.watched_elsewhere.load(Ordering::Relaxed)
    }

    /// Whether a client connected to this node wants output.
    pub fn watched_here(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Records whether clients of other nodes want output (cluster mode).
    pub fn set_watched_elsewhere(&self, watched: bool) {
        self.watched_elsewhere.store(watched, Ordering::Relaxed);
    }

    /// How many messages were made so far.
    pub fn messages_made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Opens a stream. Commands and cells become the runtime's running stream (what the
    /// tap feeds). A stream still open with the same key is ended first.
    pub fn begin(self: &Arc<Self>, kind: StreamKind, anchor: u64) -> StreamId {
        let id = StreamId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let key = StreamKey { kind, anchor };
        let Ok(mut state) = self.state.lock() else {
            return id;
        };
        if let Some(i) = state.streams.iter().position(|s| s.key == key) {
            let mut old = state.streams.swap_remove(i);
            self.finish(&mut old);
        }
        state.streams.push(Stream {
            id,
            key,
            next_seq: 1,
            pending: Vec::new(),
            skipped: 0,
            last_sent: None,
            history: VecDeque::new(),
            history_bytes: 0,
        });
        if kind != StreamKind::Thought {
            state.running = Some(id);
        }
        if !state.ticking {
            state.ticking = true;
            tokio::spawn(tick(Arc::downgrade(self)));
        }
        id
    }

    /// More output of stream `id`: sent at once if the stream's last message is older
    /// than [`INTERVAL`], else with the next tick.
    pub fn push(&self, id: StreamId, bytes: &[u8]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Some(stream) = state.streams.iter_mut().find(|s| s.id == id) else {
            return;
        };
        stream.pending.extend_from_slice(bytes);
        if stream.pending.len() > CHUNK_MAX {
            // Keep the newest bytes, from a character boundary.
            let mut cut = stream.pending.len() - CHUNK_MAX;
            while cut < stream.pending.len() && is_continuation(stream.pending[cut]) {
                cut += 1;
            }
            stream.pending.drain(..cut);
            stream.skipped += cut;
        }
        if stream.last_sent.is_none_or(|t| t.elapsed() >= INTERVAL) {
            self.send(stream, false);
        }
    }

    /// Ends stream `id`: what is pending goes out with `done`, and the stream is forgotten.
    pub fn end(&self, id: StreamId) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.running == Some(id) {
            state.running = None;
        }
        if let Some(i) = state.streams.iter().position(|s| s.id == id) {
            let mut stream = state.streams.swap_remove(i);
            self.finish(&mut stream);
        }
    }

    /// The kept messages a client has not had: of streams anchored at or before
    /// `delivered` (the newest stored event it was sent), after the seq in `seen`.
    pub fn backlog(
        &self,
        delivered: Option<u64>,
        seen: &HashMap<StreamId, u64>,
    ) -> Vec<Arc<OutputMessage>> {
        let Some(delivered) = delivered else {
            return Vec::new();
        };
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in state.streams.iter().filter(|s| s.key.anchor <= delivered) {
            let after = seen.get(&s.id).copied().unwrap_or(0);
            out.extend(s.history.iter().filter(|m| m.seq > after).cloned());
        }
        out
    }

    /// A sink for the model's answer to a request built from the events up to `after`,
    /// if a client watches: each piece of text goes out as thought output, and the
    /// stream ends (`done`) when the request and its clones are dropped.
    pub fn thought_sink(self: &Arc<Self>, after: u64) -> Option<crate::llm::TextSink> {
        if !self.is_watched() {
            return None;
        }
        let open = Arc::new(OpenStream {
            feed: self.clone(),
            id: Mutex::new(self.begin(StreamKind::Thought, after)),
            after,
        });
        let restart = open.clone();
        Some(crate::llm::TextSink::with_restart(
            move |text| open.push(text),
            // A retried request: the failed attempt's stream ends, a new one starts.
            move || restart.start_over(),
        ))
    }

    /// Whether stream `id` is still open.
    pub fn is_open(&self, id: StreamId) -> bool {
        self.state
            .lock()
            .map(|s| s.streams.iter().any(|st| st.id == id))
            .unwrap_or(false)
    }

    fn finish(&self, stream: &mut Stream) {
        self.send(stream, true);
    }

    /// Sends what is pending as one message (the final one with `done`, even if empty).
    fn send(&self, stream: &mut Stream, done: bool) {
        let mut bytes = std::mem::take(&mut stream.pending);
        if !done {
            // An unfinished character waits for its other bytes.
            let keep = incomplete_tail(&bytes);
            stream.pending = bytes.split_off(bytes.len() - keep);
        }
        if bytes.is_empty() && stream.skipped == 0 && !done {
            return;
        }
        let mut chunk = String::new();
        if stream.skipped > 0 {
            chunk = format!("[... {} bytes of output skipped ...]\n", stream.skipped);
            stream.skipped = 0;
        }
        chunk.push_str(&String::from_utf8_lossy(&bytes));
        let seq = stream.next_seq;
        stream.next_seq += 1;
        let (action_id, after) = match stream.key.kind {
            StreamKind::Thought => (None, Some(stream.key.anchor)),
            _ => (Some(stream.key.anchor), None),
        };
        let wire = Wire {
            kind: stream.key.kind,
            action_id,
            after,
            seq,
            chunk: &chunk,
            done,
        };
        let Ok(json) = serde_json::to_string(&wire) else {
            return;
        };
        let message = Arc::new(OutputMessage {
            stream: stream.id,
            anchor: stream.key.anchor,
            seq,
            done,
            json: Arc::from(json),
        });
        stream.last_sent = Some(Instant::now());
        stream.history_bytes += message.json.len();
        stream.history.push_back(message.clone());
        while stream.history_bytes > HISTORY_MAX && stream.history.len() > 1 {
            if let Some(old) = stream.history.pop_front() {
                stream.history_bytes -= old.json.len().min(stream.history_bytes);
            }
        }
        self.made.fetch_add(1, Ordering::Relaxed);
        // Nobody listening is fine: the history serves later clients.
        let _ = self.live.send(message);
    }
}

/// What a relayed message says about its stream (read back from its wire JSON).
#[derive(Deserialize)]
struct Relayed {
    kind: StreamKind,
    action_id: Option<u64>,
    after: Option<u64>,
    seq: u64,
    #[serde(default)]
    done: bool,
}

impl OutputFeed {
    /// Takes a message another node's feed made (its exact JSON), for this node's
    /// clients: kept and sent like a message of this feed, with the owner's `seq`.
    pub fn relay(&self, json: Arc<str>) {
        let Ok(r) = serde_json::from_str::<Relayed>(&json) else {
            return;
        };
        let Some(anchor) = r.action_id.or(r.after) else {
            return;
        };
        let key = StreamKey {
            kind: r.kind,
            anchor,
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let at = state.streams.iter().position(|s| s.key == key);
        let i = match at {
            // The same key from its first message again, not a repeat of it: a new stream
            // whose predecessor's `done` was missed.
            Some(i)
                if r.seq == 1
                    && state.streams[i].next_seq > 1
                    && !state.streams[i]
                        .history
                        .iter()
                        .any(|m| m.seq == 1 && m.json == json) =>
            {
                state.streams.swap_remove(i);
                None
            }
            other => other,
        };
        let i = match i {
            Some(i) => i,
            None => {
                state.streams.push(Stream {
                    id: StreamId(self.next_id.fetch_add(1, Ordering::Relaxed)),
                    key,
                    next_seq: 1,
                    pending: Vec::new(),
                    skipped: 0,
                    last_sent: None,
                    history: VecDeque::new(),
                    history_bytes: 0,
                });
                state.streams.len() - 1
            }
        };
        let stream = &mut state.streams[i];
        if r.seq < stream.next_seq {
            return;
        }
        stream.next_seq = r.seq + 1;
        let message = Arc::new(OutputMessage {
            stream: stream.id,
            anchor,
            seq: r.seq,
            done: r.done,
            json,
        });
        stream.history_bytes += message.json.len();
        stream.history.push_back(message.clone());
        while stream.history_bytes > HISTORY_MAX && stream.history.len() > 1 {
            if let Some(old) = stream.history.pop_front() {
                stream.history_bytes -= old.json.len().min(stream.history_bytes);
            }
        }
        if r.done {
            state.streams.swap_remove(i);
        }
        self.made.fetch_add(1, Ordering::Relaxed);
        let _ = self.live.send(message);
    }
}

impl OutputTap for OutputFeed {
    fn output(&self, bytes: &[u8]) {
        let running = self.state.lock().ok().and_then(|s| s.running);
        if let Some(id) = running {
            self.push(id, bytes);
        }
    }
}

/// Sends what streams have pending once their interval has passed; stops when no
/// stream is open (the next `begin` starts it again).
async fn tick(feed: Weak<OutputFeed>) {
    let mut interval = tokio::time::interval(INTERVAL / 2);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(feed) = feed.upgrade() else {
            return;
        };
        let Ok(mut state) = feed.state.lock() else {
            return;
        };
        if state.streams.is_empty() {
            state.ticking = false;
            return;
        }
        for stream in state.streams.iter_mut() {
            let due = stream.last_sent.is_none_or(|t| t.elapsed() >= INTERVAL);
            if due && (!stream.pending.is_empty() || stream.skipped > 0) {
                feed.send(stream, false);
            }
        }
    }
}

/// The model's answer being streamed; ends its stream when dropped.
struct OpenStream {
    feed: Arc<OutputFeed>,
    id: Mutex<StreamId>,
    after: u64,
}

impl OpenStream {
    fn current(&self) -> Option<StreamId> {
        self.id.lock().ok().map(|id| *id)
    }

    fn push(&self, text: &str) {
        if let Some(id) = self.current() {
            self.feed.push(id, text.as_bytes());
        }
    }

    /// Ends the stream and opens a new one with the same key (its `seq` starts at 1).
    fn start_over(&self) {
        if let Ok(mut id) = self.id.lock() {
            *id = self.feed.begin(StreamKind::Thought, self.after);
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(id) = self.current() {
            self.feed.end(id);
        }
    }
}

/// Counts one watching client while it lives.
pub struct WatchGuard(Arc<OutputFeed>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// How many bytes at the end of `bytes` are an unfinished UTF-8 character.
fn incomplete_tail(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if is_continuation(b) {
            continue;
        }
        let want = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if want > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(rx: &mut broadcast::Receiver<Arc<OutputMessage>>) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(serde_json::from_str(&m.json).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn the_first_output_goes_out_at_once_and_later_output_is_coalesced() {
        let feed = OutputFeed::new();
        let mut rx = feed.subscribe();
        let id = feed.begin(StreamKind::Command, 7);
        feed.output(b"one\n");
        feed.output(b"two\n");
        feed.output(b"three\n");
        let first = chunks(&mut rx);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["action_id"], 7);
        assert_eq!(first[0]["kind"], "command");
        assert_eq!(first[0]["seq"], 1);
        assert_eq!(first[0]["chunk"], "one\n");
        tokio::time::sleep(INTERVAL * 3).await;
        let later = chunks(&mut rx);
        assert_eq!(later.len(), 1, "{later:?}");
        assert_eq!(later[0]["chunk"], "two\nthree\n");
        feed.end(id);
        let last = chunks(&mut rx);
        assert_eq!(last[0]["done"], true);
        assert_eq!(last[0]["seq"], 3);
        assert!(!feed.is_open(id));
    }

    #[tokio::test]
    async fn a_retried_answer_ends_the_failed_attempts_stream_and_starts_again_at_seq_one() {
        let feed = OutputFeed::new();
        let _watching = feed.watch();
        let mut rx = feed.subscribe();
        let sink = feed.thought_sink(4).expect("watched");
        sink.write("half an ans");
        sink.restart();
        sink.write("The answer.");
        drop(sink);
        let got = chunks(&mut rx);
        let seqs: Vec<(u64, bool, &str)> = got
            .iter()
            .map(|m| {
                (
                    m["seq"].as_u64().unwrap(),
                    m["done"] == true,
                    m["chunk"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seqs,
            [
                (1, false, "half an ans"),
                (2, true, ""),
                (1, false, "The answer."),
                (2, true, "")
            ]
        );
        assert!(got
            .iter()
            .all(|m| m["after"] == 4 && m["kind"] == "thought"));
    }

    #[tokio::test]
    async fn relayed_messages_keep_the_owners_seq_and_drop_repeats() {
        let feed = OutputFeed::new();
        let mut rx = feed.subscribe();
        let one = r#"{"kind":"command","action_id":9,"seq":1,"chunk":"a"}"#;
        let two = r#"{"kind":"command","action_id":9,"seq":2,"chunk":"b","done":true}"#;
        feed.relay(Arc::from(one));
        feed.relay(Arc::from(one));
        feed.relay(Arc::from("not json"));
        feed.relay(Arc::from(two));
        let got = chunks(&mut rx);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["chunk"], "a");
        assert_eq!(got[1]["seq"], 2);
        // The stream ended with `done`: nothing of it is kept.
        assert!(feed.backlog(Some(100), &HashMap::new()).is_empty());
    }

    #[tokio::test]
    async fn a_flood_is_cut_to_the_newest_bytes_with_a_note() {
        let feed = OutputFeed::new();
        let mut rx = feed.subscribe();
        let id = feed.begin(StreamKind::Command, 1);
        feed.output(b"x");
        for _ in 0..100 {
            feed.output(&[b'y'; 10_000]);
        }
        feed.end(id);
        let all = chunks(&mut rx);
        let last = all.last().unwrap();
        let chunk = last["chunk"].as_str().unwrap();
        assert!(
            chunk.starts_with("[... 983616 bytes of output skipped ...]\n"),
            "{}",
            &chunk[..60]
        );
        assert_eq!(chunk.len() - chunk.find('\n').unwrap() - 1, CHUNK_MAX);
    }

    #[tokio::test]
    async fn a_character_split_between_reads_is_sent_whole() {
        let feed = OutputFeed::new();
        let mut rx = feed.subscribe();
        let id = feed.begin(StreamKind::Ipython, 3);
        let euro = "€".as_bytes();
        feed.output(&euro[..1]);
        tokio::time::sleep(INTERVAL * 2).await;
        feed.output(&euro[1..]);
        feed.end(id);
        let text: String = chunks(&mut rx)
            .iter()
            .map(|c| c["chunk"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(text, "€");
    }

    #[tokio::test]
    async fn the_backlog_keeps_the_newest_output_of_open_streams_behind_their_anchor() {
        let feed = OutputFeed::new();
        let id = feed.begin(StreamKind::Command, 5);
        for i in 0..40 {
            feed.output(format!("{i:04}{}\n", "z".repeat(4000)).as_bytes());
            tokio::time::sleep(INTERVAL + Duration::from_millis(5)).await;
        }
        let seen = HashMap::new();
        assert!(
            feed.backlog(Some(4), &seen).is_empty(),
            "not before the action"
        );
        let kept = feed.backlog(Some(5), &seen);
        let bytes: usize = kept.iter().map(|m| m.json.len()).sum();
        assert!(bytes <= HISTORY_MAX + 8 * 1024, "{bytes}");
        assert!(kept.first().unwrap().seq > 1, "the oldest were let go");
        assert_eq!(kept.last().unwrap().seq, 40);
        let mut seen = HashMap::new();
        seen.insert(id, 39);
        assert_eq!(feed.backlog(Some(5), &seen).len(), 1);
        feed.end(id);
        assert!(feed.backlog(Some(5), &HashMap::new()).is_empty());
    }

    #[test]
    fn unfinished_characters_are_found_at_the_end() {
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_tail("é".as_bytes()), 0);
        assert_eq!(incomplete_tail(&"😀".as_bytes()[..3]), 3);
        assert_eq!(incomplete_tail(b""), 0);
    }
}
