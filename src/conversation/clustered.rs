//! A conversation's task in cluster mode: the owner of its lease runs the agent and the
//! runtime ([`super::task::run_owned`]) and announces each stored event; every other node
//! follows the events from the database and forwards its clients' commands to the owner.
//! One node switches between the two roles on the same [`Conversation`], so its clients
//! keep their subscriptions through a takeover.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;

use super::handle::{Command, Conversation, ConversationError};
use super::stream::EventStream;
use super::task::{self, FinishGuard, Owner};
use crate::agent::AgentOptions;
use crate::cluster::{Acquired, Cluster, Lease, Signal, Taken};
use crate::config::Config;
use crate::events::{Event, Observation};
use crate::runtime::LocalRuntime;
use crate::store::{EventRange, EventStore, StoredEvent};

/// Stored events announced to the other nodes in one Redis round trip, at most.
const ANNOUNCE_BATCH: usize = 256;

/// Builds the runtime and the agent's options each time this node becomes the owner.
pub(super) type OwnerKit =
    Box<dyn Fn() -> Option<(Arc<LocalRuntime>, (Arc<Config>, AgentOptions))> + Send + Sync>;

/// Every lease time, takes over the running conversations whose owner died (their
/// lease is gone) and that are not open here: opening one makes this node try its lease.
pub async fn scan_orphans(
    manager: std::sync::Weak<super::ConversationManager>,
    cluster: Arc<Cluster>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(cluster.lease().min(Duration::from_secs(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(manager) = manager.upgrade() else {
            return;
        };
        let orphans = match cluster.registry.orphans().await {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!("cannot scan for orphaned conversations: {e}");
                continue;
            }
        };
        for id in orphans {
            if manager.get_open(&id).await.is_some() {
                continue;
            }
            tracing::info!(conversation = %id, node = %cluster.node, "taking over a running conversation whose owner is gone");
            if let Err(e) = manager.open(&id, false).await {
                tracing::warn!(conversation = %id, "cannot take over: {e}");
                if matches!(
                    e,
                    super::ManagerError::NotFound(_) | super::ManagerError::InvalidId
                ) {
                    let _ = cluster.registry.set_running(&id, false).await;
                }
            }
        }
    }
}

/// The events of one follower read.
const FOLLOW_PAGE: usize = 512;

/// Runs conversation `conversation` on this node until it is closed, owning it whenever
/// its lease can be taken and following it otherwise.
pub(super) async fn run(
    conversation: Arc<Conversation>,
    mut commands: mpsc::Receiver<Command>,
    store: Arc<dyn EventStore>,
    cluster: Arc<Cluster>,
    kit: OwnerKit,
) {
    let _finished = FinishGuard(conversation.clone());
    let (_watch, mut signals) = cluster.bus.watch(&conversation.id);
    let mut node = Node {
        conversation,
        store,
        cluster,
        cursor: None,
        in_flight: Arc::default(),
        wait_until: None,
    };
    node.cursor = match node.store.max_event_id(&node.conversation.id).await {
        Ok(max) => max,
        Err(e) => {
            tracing::error!("cannot read the conversation's events: {e}");
            return;
        }
    };
    while !node.conversation.closed.is_cancelled() {
        let lease = node.try_own().await;
        node.conversation
            .follower
            .store(lease.is_none(), std::sync::atomic::Ordering::Relaxed);
        match lease {
            Some(lease) => node.own(lease, &mut commands, &mut signals, &kit).await,
            None => node.follow(&mut commands, &mut signals).await,
        }
    }
}

/// One node's side of a conversation.
struct Node {
    conversation: Arc<Conversation>,
    store: Arc<dyn EventStore>,
    cluster: Arc<Cluster>,
    /// The highest event id sent on the conversation's live feed on this node.
    cursor: Option<u64>,
    /// Forwarded commands (by request id) submitted here and not yet confirmed durable.
    in_flight: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Not before then: Redis lost the lease and its owner may still be alive.
    wait_until: Option<Instant>,
}

impl Node {
    /// Takes the lease if it is free and claims the conversation in the database.
    async fn try_own(&mut self) -> Option<Lease> {
        let id = &self.conversation.id;
        if self.wait_until.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        // Without the database nobody can own it: followers wait for it to return.
        let stored_fence = match self.store.fence(id).await {
            Ok(fence) => fence.unwrap_or(0),
            Err(e) => {
                tracing::warn!("cannot read the conversation's owner: {e}");
                return None;
            }
        };
        let lease = match self.cluster.leases.acquire(id, stored_fence).await {
            Ok(Acquired::Taken(lease)) => lease,
            Ok(Acquired::Held) => return None,
            Ok(Acquired::Rebuilt) => {
                tracing::info!(
                    stored_fence,
                    "Redis lost the lease; waiting for its owner to restore it"
                );
                self.wait_until = Some(Instant::now() + self.cluster.lease());
                return None;
            }
            Err(e) => {
                tracing::warn!("cannot take the lease: {e}");
                return None;
            }
        };
        match self.store.claim(id, lease.token).await {
            Ok(true) => Some(lease),
            Ok(false) => {
                tracing::info!(token = lease.token, "a newer owner already claimed it");
                None
            }
            Err(e) => {
                tracing::warn!("cannot claim the conversation: {e}");
                let _ = self.cluster.leases.release(id, lease).await;
                None
            }
        }
    }

    /// Sends every stored event after the cursor on the live feed; false if the store
    /// could not be read.
    async fn catch_up(&mut self) -> bool {
        loop {
            let range = EventRange {
                start: self.cursor.map_or(0, |c| c + 1),
                end: None,
                limit: FOLLOW_PAGE,
                reverse: false,
                max_bytes: 16 * 1024 * 1024,
            };
            let page = match self.store.events(&self.conversation.id, range).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("follower cannot read events: {e}");
                    return false;
                }
            };
            let full = page.len() == FOLLOW_PAGE;
            for mut ev in page {
                ev.durable_at = Some(Instant::now());
                self.cursor = Some(ev.id);
                let _ = self.conversation.live.send(ev);
            }
            if !full {
                return true;
            }
        }
    }

    /// Follows the owner's events until the lease looks free or the conversation closes.
    async fn follow(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
    ) {
        let mut tick = tokio::time::interval(self.cluster.poll());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lease_check = self.cluster.poll().min(Duration::from_millis(250));
        let mut last_check = Instant::now();
        loop {
            tokio::select! {
                _ = self.conversation.closed.cancelled() => return,
                signal = signals.recv() => match signal {
                    Some(Signal::Stored { id, json }) => self.on_stored(id, json).await,
                    Some(Signal::Output(json)) => self.conversation.output.relay(json),
                    Some(Signal::Inbox) => {}
                    None => return,
                },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.forward(cmd),
                    None => return,
                },
                _ = tick.tick() => {
                    self.catch_up().await;
                    self.mark_watched().await;
                }
                _ = tokio::time::sleep(lease_check.saturating_sub(last_check.elapsed())) => {
                    last_check = Instant::now();
                    match self.cluster.leases.holder(&self.conversation.id).await {
                        Ok(None) => return,
                        Ok(Some(_)) => {}
                        Err(e) => tracing::debug!("cannot read the lease: {e}"),
                    }
                }
            }
        }
    }

    /// Tells the owner that clients here watch the live output (so it streams the
    /// model's answer), for a few polls.
    async fn mark_watched(&self) {
        if !self.conversation.output.watched_here() {
            return;
        }
        let ttl = self.cluster.poll() * 4;
        if let Err(e) = self
            .cluster
            .registry
            .mark_watched(&self.conversation.id, ttl)
            .await
        {
            tracing::debug!("cannot mark the live output watched: {e}");
        }
    }

    /// An owner announced event `id`: sent on at once when it is the next one and came
    /// with its JSON, else read from the database (which fills any gap).
    async fn on_stored(&mut self, id: u64, json: Option<Arc<str>>) {
        if self.cursor.is_some_and(|c| id <= c) {
            return;
        }
        match json {
            Some(json) if id == self.cursor.map_or(0, |c| c + 1) => {
                self.cursor = Some(id);
                let _ = self.conversation.live.send(StoredEvent {
                    id,
                    json,
                    durable_at: Some(Instant::now()),
                });
            }
            _ => {
                self.catch_up().await;
            }
        }
    }

    /// Sends a client's command to the owner through the conversation's inbox.
    fn forward(&self, cmd: Command) {
        let Command::UserEvent {
            event,
            client_id,
            reply,
        } = cmd
        else {
            // The agent and the runtime only run on the owner.
            return;
        };
        let cluster = self.cluster.clone();
        let id = self.conversation.id.clone();
        let wait = cluster.lease() + Duration::from_secs(10);
        tokio::spawn(async move {
            let value = match serde_json::from_str(&event.to_json()) {
                Ok(v) => v,
                Err(e) => {
                    if let Some(tx) = reply {
                        let _ = tx.send(Err(ConversationError::Unavailable(e.to_string())));
                    }
                    return;
                }
            };
            let owner = cluster.leases.holder(&id).await.ok().flatten();
            let result = cluster
                .bus
                .forward(
                    &id,
                    owner.as_ref().map(|h| h.node.as_str()),
                    value,
                    client_id.map(|c| c.to_string()),
                    wait,
                )
                .await;
            if let Err(e) = &result {
                tracing::warn!(conversation = %id, "a forwarded command was not confirmed: {e}");
            }
            if let Some(tx) = reply {
                let _ = tx.send(result.map_err(|e| ConversationError::Unavailable(e.to_string())));
            }
        });
    }

    /// Runs the conversation as its owner until the lease is lost or it closes.
    async fn own(
        &mut self,
        lease: Lease,
        commands: &mut mpsc::Receiver<Command>,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
        kit: &OwnerKit,
    ) {
        let id = self.conversation.id.clone();
        tracing::info!(
            token = lease.token,
            orphaned = lease.orphaned,
            "owning the conversation"
        );
        // Everything the previous owner stored goes out before our first event.
        let parts = if self.catch_up().await { kit() } else { None };
        let stream = match parts {
            Some(_) => EventStream::open(
                id.clone(),
                self.store.clone(),
                self.conversation.live.clone(),
            )
            .await
            .ok(),
            None => None,
        };
        let (Some((runtime, agent)), Some(stream)) = (parts, stream) else {
            tracing::error!("cannot start the conversation here; giving the lease back");
            self.step_down(lease, true).await;
            tokio::time::sleep(self.cluster.poll()).await;
            return;
        };
        let stop = self.conversation.closed.child_token();
        let note = lease.orphaned.then(|| {
            Event::observation(
                Observation::error(
                    crate::cluster::TAKEOVER_NOTICE,
                    crate::cluster::TAKEOVER_ERROR_ID,
                ),
                None,
            )
        });
        let mut live = self.conversation.live.subscribe();
        let mut output = self.conversation.output.subscribe();
        let owner = Owner {
            runtime,
            agent,
            stop: stop.clone(),
            note,
        };
        let run = task::run_owned(
            self.conversation.clone(),
            stream,
            commands,
            self.store.clone(),
            owner,
        );
        tokio::pin!(run);
        let lease_time = self.cluster.lease();
        let mut renew = tokio::time::interval(lease_time / 3);
        renew.tick().await;
        let mut valid_until = Instant::now() + lease_time;
        let mut inbox_poll = tokio::time::interval(self.cluster.poll());
        let mut lost = false;
        self.take_inbox().await;
        let left = loop {
            tokio::select! {
                left = &mut run => break left,
                // Stored events to announce: this one and whatever else is ready.
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        let mut ready = vec![ev];
                        while ready.len() < ANNOUNCE_BATCH {
                            match live.try_recv() {
                                Ok(ev) => ready.push(ev),
                                Err(TryRecvError::Lagged(_)) => continue,
                                Err(_) => break,
                            }
                        }
                        self.publish(&ready).await;
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {}
                },
                // Live output made here, for the other nodes' clients.
                msg = output.recv() => match msg {
                    Ok(msg) => {
                        let mut ready = vec![msg.json.clone()];
                        while let Ok(msg) = output.try_recv() {
                            ready.push(msg.json.clone());
                        }
                        if let Err(e) = self.cluster.bus.publish_output(&id, &ready).await {
                            tracing::debug!("cannot relay live output: {e}");
                        }
                    }
                    // Missed output is not stored anywhere: the observation will be.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {}
                },
                signal = signals.recv() => {
                    if let Some(Signal::Inbox) = signal {
                        self.take_inbox().await;
                    }
                }
                _ = inbox_poll.tick() => {
                    self.take_inbox().await;
                    let watched = self.cluster.registry.watched(&id).await.unwrap_or(false);
                    self.conversation.output.set_watched_elsewhere(watched);
                }
                _ = renew.tick(), if !stop.is_cancelled() => {
                    let started = Instant::now();
                    match self.cluster.leases.renew(&id, lease).await {
                        Ok(true) => {
                            valid_until = started + lease_time;
                            let busy = self.conversation.is_busy();
                            if let Err(e) = self.cluster.registry.set_running(&id, busy).await {
                                tracing::debug!("cannot update the running registry: {e}");
                            }
                        }
                        Ok(false) => {
                            tracing::warn!(token = lease.token, "lease lost: stepping down");
                            lost = true;
                            stop.cancel();
                        }
                        Err(e) => {
                            // Without Redis, the database says whether a newer owner
                            // claimed it (its fencing refuses our appends meanwhile):
                            // the run goes on while the claim is still ours.
                            if Instant::now() + lease_time / 3 >= valid_until {
                                match self.store.fence(&id).await {
                                    Ok(Some(fence)) if fence > lease.token => {
                                        tracing::warn!("cannot renew the lease ({e}) and a newer owner claimed it: stepping down");
                                        lost = true;
                                        stop.cancel();
                                    }
                                    _ => tracing::warn!("cannot renew the lease ({e}): keeping the conversation while the database has no newer owner"),
                                }
                            }
                        }
                    }
                }
            }
        };
        let mut rest = Vec::new();
        loop {
            match live.try_recv() {
                Ok(ev) => rest.push(ev),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        self.publish(&rest).await;
        self.conversation.output.set_watched_elsewhere(false);
        self.step_down(lease, !lost).await;
        for cmd in left {
            self.forward(cmd);
        }
    }

    /// Announces stored events to the other nodes (one round trip) and moves the cursor.
    async fn publish(&mut self, events: &[StoredEvent]) {
        let mut fresh = Vec::with_capacity(events.len());
        for ev in events {
            if self.cursor.is_some_and(|c| ev.id <= c) {
                continue;
            }
            self.cursor = Some(ev.id);
            fresh.push((ev.id, &*ev.json));
        }
        if fresh.is_empty() {
            return;
        }
        if let Err(e) = self
            .cluster
            .bus
            .publish_stored(&self.conversation.id, &fresh)
            .await
        {
            // Followers poll the database: they are late, not wrong.
            tracing::debug!(events = fresh.len(), "cannot announce stored events: {e}");
        }
    }

    /// Stores the commands waiting in the inbox and answers their senders. Commands
    /// taken earlier but not yet confirmed durable (by an owner that died, or by this one
    /// before a store error) are submitted again first; their keys keep them single.
    async fn take_inbox(&self) {
        match self
            .cluster
            .bus
            .taken_forwarded(&self.conversation.id)
            .await
        {
            Ok(taken) => {
                for t in taken {
                    self.submit_forwarded(t).await;
                }
            }
            Err(e) => {
                tracing::debug!("cannot read the taken commands: {e}");
                return;
            }
        }
        loop {
            let taken = match self.cluster.bus.take_forwarded(&self.conversation.id).await {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!("cannot read the inbox: {e}");
                    return;
                }
            };
            self.submit_forwarded(taken).await;
        }
    }

    /// Submits a taken command (unless it is already in flight here); once its event is
    /// durable, drops it from the taken list and answers its sender.
    async fn submit_forwarded(&self, taken: Taken) {
        let req = taken.command.req.clone();
        let fresh = self
            .in_flight
            .lock()
            .map(|mut f| f.insert(req.clone()))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let id = self.conversation.id.clone();
        let event = match Event::from_value(taken.command.event.clone()) {
            Ok(e) => e,
            Err(e) => {
                let why = format!("invalid event: {e}");
                if let Err(e) = self.cluster.bus.done_forwarded(&id, &taken.raw).await {
                    tracing::debug!("cannot drop an invalid forwarded command: {e}");
                }
                self.cluster.bus.answer(&taken.command, Err(why)).await;
                self.forget_in_flight(&req);
                return;
            }
        };
        let key: Arc<str> = Arc::from(taken.command.key());
        let result = self.conversation.submit_keyed(event, key).await;
        let cluster = self.cluster.clone();
        let in_flight = self.in_flight.clone();
        tokio::spawn(async move {
            let stored = match result {
                Ok(rx) => match rx.await {
                    Ok(Ok(event_id)) => Ok(event_id),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(ConversationError::Closed.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            match stored {
                Ok(event_id) => {
                    if let Err(e) = cluster.bus.done_forwarded(&id, &taken.raw).await {
                        // Stored again later under the same key: acknowledged, not doubled.
                        tracing::debug!("cannot drop a stored forwarded command: {e}");
                    }
                    cluster.bus.answer(&taken.command, Ok(event_id)).await;
                }
                Err(e) => {
                    // Kept in the taken list: the next drain (here or on the next owner)
                    // stores it; the sender hears when it is stored.
                    tracing::warn!(conversation = %id, "a forwarded command was not stored yet: {e}");
                }
            }
            if let Ok(mut f) = in_flight.lock() {
                f.remove(&req);
            }
        });
    }

    fn forget_in_flight(&self, req: &str) {
        if let Ok(mut f) = self.in_flight.lock() {
            f.remove(req);
        }
    }

    /// Gives the lease back (when it is still ours) and forgets the database claim.
    async fn step_down(&self, lease: Lease, release: bool) {
        self.store.unclaim(&self.conversation.id).await;
        if release {
            if let Err(e) = self
                .cluster
                .registry
                .set_running(&self.conversation.id, false)
                .await
            {
                tracing::debug!("cannot update the running registry: {e}");
            }
            if let Err(e) = self
                .cluster
                .leases
                .release(&self.conversation.id, lease)
                .await
            {
                tracing::warn!("cannot release the lease: {e}");
            }
        }
    }
}
