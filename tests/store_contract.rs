//! The `EventStore` contract, proved against every backend: SQLite (the embedded default)
//! and PostgreSQL (a real server, see tests/common/postgres.rs). Each scenario is one
//! async function taking a store opener; a macro makes a test of it per backend.

mod common;

use openhands_server::store::{
    Append, ConversationMetadata, EventRange, EventStore, PostgresStore, SqliteStore, StoreError,
    StoredEvent,
};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type Reply = oneshot::Receiver<Result<(), StoreError>>;

/// A store being opened.
type Opening = Pin<Box<dyn Future<Output = Arc<dyn EventStore>>>>;

/// Opens a store of one backend; calling it again opens the same data (a restart).
struct Backend {
    open: Box<dyn Fn() -> Opening>,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    Backend {
        open: Box::new(move || {
            let path = path.clone();
            Box::pin(
                async move { Arc::new(SqliteStore::open(&path).unwrap()) as Arc<dyn EventStore> },
            )
        }),
        _dir: Some(dir),
    }
}

fn postgres() -> Backend {
    let url = common::postgres::Postgres::shared().fresh_database();
    Backend {
        open: Box::new(move || {
            let url = url.clone();
            Box::pin(async move {
                Arc::new(PostgresStore::connect(&url, None).await.unwrap()) as Arc<dyn EventStore>
            })
        }),
        _dir: None,
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::sqlite()).await })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::postgres()).await })*
        }
    };
}

contract!(
    appends_are_durable_in_queue_order_and_read_back_byte_identical,
    ranges_limits_reverse_and_byte_caps_page_the_events,
    a_repeated_event_id_is_refused_alone,
    metadata_is_stored_patched_listed_and_deleted_with_its_events,
    settings_and_secrets_round_trip_and_survive_a_reopen,
    client_message_ids_survive_a_reopen_and_go_with_their_conversation,
    hostile_ids_and_contents_round_trip_or_are_refused_alone,
    a_huge_event_round_trips_and_a_page_stops_at_its_byte_cap,
    flush_waits_for_every_queued_append,
);

fn append(store: &dyn EventStore, cid: &str, id: u64, json: String, key: Option<&str>) -> Reply {
    let (tx, rx) = oneshot::channel();
    store.append(Append {
        conversation_id: Arc::from(cid),
        event: StoredEvent {
            id,
            json: Arc::from(json),
            durable_at: None,
        },
        client_message_id: key.map(Arc::from),
        on_durable: Box::new(move |r| drop(tx.send(r))),
    });
    rx
}

fn event_json(id: u64, text: &str) -> String {
    let t = serde_json::to_string(text).unwrap();
    format!(
        r#"{{"id":{id},"timestamp":"2025-10-10T12:00:00.000001","source":"user","message":{t},"action":"message","args":{{"content":{t},"file_urls":[],"image_urls":[],"wait_for_response":false,"security_risk":-1}}}}"#
    )
}

fn all(start: u64) -> EventRange {
    EventRange {
        start,
        end: None,
        limit: usize::MAX,
        reverse: false,
        max_bytes: usize::MAX,
    }
}

async fn appends_are_durable_in_queue_order_and_read_back_byte_identical(b: Backend) {
    let store = (b.open)().await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut written = Vec::new();
    let mut replies = Vec::new();
    // Queued without waiting: they commit in groups, and are answered in queue order.
    for n in 0..600u64 {
        let cid = format!("c{}", n % 3);
        let id = n / 3;
        let text = if n % 50 == 0 {
            "long ".repeat(200)
        } else {
            format!("m{n}")
        };
        let json = event_json(id, &text);
        written.push((cid.clone(), json.clone()));
        let (tx, rx) = oneshot::channel();
        let order = order.clone();
        store.append(Append {
            conversation_id: Arc::from(cid.as_str()),
            event: StoredEvent {
                id,
                json: Arc::from(json),
                durable_at: None,
            },
            client_message_id: None,
            on_durable: Box::new(move |r| {
                order.lock().unwrap().push(n);
                drop(tx.send(r));
            }),
        });
        replies.push(rx);
    }
    for r in replies {
        r.await.unwrap().unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order,
        (0..600).collect::<Vec<_>>(),
        "on_durable in commit order"
    );
    for c in 0..3 {
        let cid = format!("c{c}");
        let events = store.events(&cid, all(0)).await.unwrap();
        let expected: Vec<&String> = written
            .iter()
            .filter(|(w, _)| *w == cid)
            .map(|(_, j)| j)
            .collect();
        assert_eq!(events.len(), 200);
        for (i, (e, want)) in events.iter().zip(expected).enumerate() {
            assert_eq!(e.id, i as u64, "dense ids");
            assert_eq!(&*e.json, want.as_str(), "byte-identical");
        }
        assert_eq!(store.max_event_id(&cid).await.unwrap(), Some(199));
    }
    assert_eq!(store.max_event_id("nobody").await.unwrap(), None);
    // A restart reads the same.
    drop(store);
    let store = (b.open)().await;
    assert_eq!(store.events("c1", all(0)).await.unwrap().len(), 200);
}

async fn ranges_limits_reverse_and_byte_caps_page_the_events(b: Backend) {
    let store = (b.open)().await;
    let mut last = None;
    for id in 0..20 {
        last = Some(append(
            &*store,
            "r",
            id,
            event_json(id, &format!("e{id}")),
            None,
        ));
    }
    last.unwrap().await.unwrap().unwrap();
    let ids = |v: Vec<StoredEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let range = |start, end, limit, reverse, max_bytes| EventRange {
        start,
        end,
        limit,
        reverse,
        max_bytes,
    };
    assert_eq!(
        ids(store
            .events("r", range(5, Some(9), 100, false, usize::MAX))
            .await
            .unwrap()),
        vec![5, 6, 7, 8, 9]
    );
    assert_eq!(
        ids(store
            .events("r", range(5, None, 3, false, usize::MAX))
            .await
            .unwrap()),
        vec![5, 6, 7]
    );
    assert_eq!(
        ids(store
            .events("r", range(2, Some(10), 4, true, usize::MAX))
            .await
            .unwrap()),
        vec![10, 9, 8, 7]
    );
    let one = store.events("r", all(0)).await.unwrap()[0].json.len();
    assert_eq!(
        ids(store
            .events("r", range(0, None, 100, false, one * 2 + 1))
            .await
            .unwrap()),
        vec![0, 1, 2],
        "a page stops once it holds max_bytes"
    );
    assert_eq!(
        ids(store
            .events("r", range(0, None, 100, false, 1))
            .await
            .unwrap()),
        vec![0],
        "at least one event"
    );
    assert!(store
        .events("r", range(20, None, 10, false, usize::MAX))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .events(
            "r",
            range(u64::MAX, Some(u64::MAX), usize::MAX, false, usize::MAX)
        )
        .await
        .unwrap()
        .is_empty());
}

async fn a_repeated_event_id_is_refused_alone(b: Backend) {
    let store = (b.open)().await;
    let first = append(&*store, "d", 0, event_json(0, "first"), None);
    let again = append(&*store, "d", 0, event_json(0, "again"), Some("k"));
    let next = append(&*store, "d", 1, event_json(1, "next"), None);
    first.await.unwrap().unwrap();
    assert!(again.await.unwrap().is_err(), "id 0 is taken");
    next.await.unwrap().unwrap();
    let events = store.events("d", all(0)).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[0].json.contains("first"));
    assert_eq!(store.client_message_event("d", "k").await.unwrap(), None);
}

async fn metadata_is_stored_patched_listed_and_deleted_with_its_events(b: Backend) {
    let store = (b.open)().await;
    let mut older = ConversationMetadata::new("older", Some("gui"));
    older.created_at = "2025-01-01T00:00:00.000000Z".into();
    let mut newer = ConversationMetadata::new("newer", None);
    newer.created_at = "2025-02-01T00:00:00.000000Z".into();
    newer.title = "Café ✓ \"quoted\"".into();
    store.put_conversation(older.clone()).await.unwrap();
    store.put_conversation(newer.clone()).await.unwrap();
    assert_eq!(
        store.conversation("newer").await.unwrap(),
        Some(newer.clone())
    );
    assert_eq!(store.conversation("missing").await.unwrap(), None);
    let list = store.conversations(0, 10).await.unwrap();
    let ids: Vec<_> = list.iter().map(|m| m.conversation_id.as_str()).collect();
    assert_eq!(ids, ["newer", "older"], "newest first");
    assert_eq!(
        store.conversations(1, 10).await.unwrap()[0].conversation_id,
        "older"
    );
    assert!(store.conversations(2, 10).await.unwrap().is_empty());

    let patched = store
        .patch_conversation(
            "older",
            json!({"title": "Renamed", "accumulated_cost": 1.5}),
            None,
        )
        .await
        .unwrap();
    assert!(patched);
    let m = store.conversation("older").await.unwrap().unwrap();
    assert_eq!((m.title.as_str(), m.accumulated_cost), ("Renamed", 1.5));
    assert_eq!(m.trigger.as_deref(), Some("gui"), "other fields kept");
    // Only while the title is still the one expected (the auto-title race).
    assert!(!store
        .patch_conversation(
            "older",
            json!({"title": "Auto"}),
            Some("Conversation older".into())
        )
        .await
        .unwrap());
    assert!(store
        .patch_conversation("older", json!({"title": "Auto"}), Some("Renamed".into()))
        .await
        .unwrap());
    assert!(!store
        .patch_conversation("missing", json!({"title": "x"}), None)
        .await
        .unwrap());

    append(&*store, "older", 0, event_json(0, "x"), Some("k"))
        .await
        .unwrap()
        .unwrap();
    append(&*store, "newer", 0, event_json(0, "y"), None)
        .await
        .unwrap()
        .unwrap();
    assert!(store.delete_conversation("older").await.unwrap());
    assert!(!store.delete_conversation("older").await.unwrap());
    assert_eq!(store.conversation("older").await.unwrap(), None);
    assert!(store.events("older", all(0)).await.unwrap().is_empty());
    assert_eq!(store.max_event_id("older").await.unwrap(), None);
    assert_eq!(store.events("newer", all(0)).await.unwrap().len(), 1);
    // The conversation's metadata is replaced as a whole by a put.
    newer.title = "Put again".into();
    store.put_conversation(newer.clone()).await.unwrap();
    assert_eq!(
        store.conversation("newer").await.unwrap().unwrap().title,
        "Put again"
    );
}

async fn settings_and_secrets_round_trip_and_survive_a_reopen(b: Backend) {
    let store = (b.open)().await;
    assert_eq!(store.settings().await.unwrap(), None);
    let settings = json!({
        "llm_model": "openai/gpt-4o",
        "llm_api_key": "sk-secret",
        "custom_secrets": {"GITHUB_TOKEN": {"secret": "ghp_x\u{0000}y", "description": "d"}},
        "provider_tokens": {"github": {"token": "t", "host": null}},
    });
    store.put_settings(settings.clone()).await.unwrap();
    assert_eq!(store.settings().await.unwrap(), Some(settings.clone()));
    let mut changed = settings.clone();
    changed["llm_model"] = json!("anthropic/claude");
    store.put_settings(changed.clone()).await.unwrap();
    drop(store);
    let store = (b.open)().await;
    assert_eq!(store.settings().await.unwrap(), Some(changed));
}

async fn client_message_ids_survive_a_reopen_and_go_with_their_conversation(b: Backend) {
    let store = (b.open)().await;
    store
        .put_conversation(ConversationMetadata::new("c1", None))
        .await
        .unwrap();
    append(&*store, "c1", 0, event_json(0, "a"), None)
        .await
        .unwrap()
        .unwrap();
    append(&*store, "c1", 1, event_json(1, "b"), Some("k"))
        .await
        .unwrap()
        .unwrap();
    append(&*store, "c2", 0, event_json(0, "c"), Some("k"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.client_message_event("c1", "k").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.client_message_event("c1", "other").await.unwrap(),
        None
    );
    drop(store);
    let store = (b.open)().await;
    assert_eq!(
        store.client_message_event("c1", "k").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.client_message_event("c2", "k").await.unwrap(),
        Some(0)
    );
    assert!(store.delete_conversation("c1").await.unwrap());
    assert_eq!(store.client_message_event("c1", "k").await.unwrap(), None);
    assert_eq!(
        store.client_message_event("c2", "k").await.unwrap(),
        Some(0)
    );
}

async fn hostile_ids_and_contents_round_trip_or_are_refused_alone(b: Backend) {
    let store = (b.open)().await;
    let injection = "x'); DROP TABLE events; --";
    let nul_escape = event_json(0, "before\u{0000}after \\u0000 \u{1F600}");
    assert!(nul_escape.contains("\\u0000"), "JSON escapes NUL");
    append(&*store, injection, 0, nul_escape.clone(), Some(injection))
        .await
        .unwrap()
        .unwrap();
    let mut meta = ConversationMetadata::new(injection, None);
    meta.title = "title\u{0000}with NUL".into();
    store.put_conversation(meta.clone()).await.unwrap();
    assert_eq!(store.conversation(injection).await.unwrap(), Some(meta));
    let back = store.events(injection, all(0)).await.unwrap();
    assert_eq!(
        &*back[0].json,
        nul_escape.as_str(),
        "\\u0000 escapes round-trip"
    );
    assert_eq!(
        store
            .client_message_event(injection, injection)
            .await
            .unwrap(),
        Some(0)
    );
    // A raw NUL byte (never produced by the server's JSON) is kept or refused, but
    // only that append is affected.
    let raw = append(&*store, "raw", 0, "{\"x\":\"a\0b\"}".into(), None);
    let ok = append(&*store, "raw", 1, event_json(1, "fine"), None);
    let raw = raw.await.unwrap();
    ok.await.unwrap().unwrap();
    let stored = store.events("raw", all(0)).await.unwrap();
    match raw {
        Ok(()) => assert_eq!(&*stored[0].json, "{\"x\":\"a\0b\"}"),
        Err(e) => {
            assert!(e.to_string().contains("NUL"), "{e}");
            assert_eq!(stored.len(), 1);
        }
    }
    // Reads with ids no event can have find nothing (and do not fail).
    for bad in ["a\0b", "", "%", "_", "' OR '1'='1", &"z".repeat(10_000)] {
        assert!(
            store.events(bad, all(0)).await.unwrap().is_empty(),
            "{bad:?}"
        );
        assert_eq!(store.conversation(bad).await.unwrap(), None);
        assert_eq!(store.client_message_event(bad, bad).await.unwrap(), None);
        assert!(!store.delete_conversation(bad).await.unwrap());
    }
    // The tables are still there.
    assert_eq!(store.events(injection, all(0)).await.unwrap().len(), 1);
    assert_eq!(store.conversations(0, 10).await.unwrap().len(), 1);
}

async fn a_huge_event_round_trips_and_a_page_stops_at_its_byte_cap(b: Backend) {
    let store = (b.open)().await;
    let huge = event_json(0, &"ü".repeat(10 * 1024 * 1024));
    append(&*store, "h", 0, huge.clone(), None)
        .await
        .unwrap()
        .unwrap();
    append(&*store, "h", 1, event_json(1, "small"), None)
        .await
        .unwrap()
        .unwrap();
    let page = store
        .events(
            "h",
            EventRange {
                start: 0,
                end: None,
                limit: 100,
                reverse: false,
                max_bytes: 1024,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].json.len(), huge.len());
    assert!(*page[0].json == *huge, "byte-identical");
}

async fn flush_waits_for_every_queued_append(b: Backend) {
    let store = (b.open)().await;
    for id in 0..300 {
        drop(append(&*store, "f", id, event_json(id, "x"), None));
    }
    store.flush().await.unwrap();
    assert_eq!(store.max_event_id("f").await.unwrap(), Some(299));
}
