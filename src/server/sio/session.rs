//! One Engine.IO session: what its handshake said, and its two outgoing queues.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::packet::OutPacket;

/// Depth of a session's outgoing data queue; a full queue back-pressures its producers.
pub const DATA_QUEUE: usize = 256;
/// More pending control packets than this means the client stopped reading.
pub const MAX_CONTROL: usize = 1024;

/// One Engine.IO connection, whichever transport currently carries it.
pub struct Session {
    pub sid: String,
    /// The query string of the handshake request.
    pub query: Vec<(String, String)>,
    /// The credential cookie of the handshake request, if any (the application names it).
    pub cookie_key: Option<String>,
    control: Mutex<VecDeque<OutPacket>>,
    /// Set when `control` may be non-empty (saves a lock per loop turn).
    has_control: AtomicBool,
    /// Wakes the transport when a control packet was queued or the transport changed.
    pub(super) wake: Notify,
    data_tx: mpsc::Sender<OutPacket>,
    pub(super) data_rx: tokio::sync::Mutex<mpsc::Receiver<OutPacket>>,
    pub closed: CancellationToken,
    /// The session moved to (or started on) a websocket.
    pub(super) upgraded: AtomicBool,
    /// The client answered the last ping.
    pub(super) pong: AtomicBool,
    /// The client's address, when known.
    pub(super) peer: Option<IpAddr>,
    /// Whether the client proved who it is (at the handshake, or later through the
    /// application's own check); until then its packets are small and its time short.
    authenticated: AtomicBool,
}

impl Session {
    /// A session as a handshake opens it.
    pub(super) fn new(
        sid: String,
        query: Vec<(String, String)>,
        cookie_key: Option<String>,
        peer: Option<IpAddr>,
        authenticated: bool,
        websocket: bool,
    ) -> Self {
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        Session {
            sid,
            query,
            cookie_key,
            control: Mutex::new(VecDeque::new()),
            has_control: AtomicBool::new(false),
            wake: Notify::new(),
            data_tx,
            data_rx: tokio::sync::Mutex::new(data_rx),
            closed: CancellationToken::new(),
            upgraded: AtomicBool::new(websocket),
            pong: AtomicBool::new(true),
            peer,
            authenticated: AtomicBool::new(authenticated),
        }
    }

    /// Marks the session as belonging to an authenticated client.
    pub fn authenticate(&self) {
        self.authenticated.store(true, Ordering::Release);
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// First value of query parameter `key`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of query parameter `key`.
    pub fn query_params<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Queues a reply ahead of data; written before the transport reads further input.
    /// More than [`MAX_CONTROL`] pending replies close the session.
    pub fn reply(&self, packet: OutPacket) {
        let overflow = match self.control.lock() {
            Ok(mut q) => {
                q.push_back(packet);
                q.len() > MAX_CONTROL
            }
            Err(_) => true,
        };
        self.has_control.store(true, Ordering::Release);
        if overflow {
            self.closed.cancel();
        }
        self.wake.notify_one();
    }

    /// Queues a Socket.IO packet as a reply (see [`Session::reply`]).
    pub fn reply_message(&self, sio: &str) {
        self.reply(OutPacket::message(sio));
    }

    /// Queues a packet as data, waiting while the queue is full. Returns false once the
    /// session is closed (the packet is then dropped).
    pub async fn send_packet(&self, packet: OutPacket) -> bool {
        // Fast path: room in the queue.
        let packet = match self.data_tx.try_send(packet) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(p)) => p,
        };
        // Either the queue takes the packet, or the session ends first.
        tokio::select! {
            r = self.data_tx.send(packet) => r.is_ok(),
            _ = self.closed.cancelled() => false,
        }
    }

    /// Takes every pending control packet, oldest first.
    pub(super) fn take_control(&self) -> Vec<OutPacket> {
        if !self.has_control.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.control
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }
}
