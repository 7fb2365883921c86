//! Fencing of session owners against a real `redis-server`: when a session moves to another
//! node, the old owner's late writes are refused (its copy is stale), so Redis keeps the new
//! owner's state; the old owner reloads before it serves the session again.

#[path = "support/redis_process.rs"]
mod redis_process;
#[path = "support/session_steps.rs"]
mod session_steps;

use session_steps::count;
use std::time::Duration;

use redis_process::{Redis, free_port, redis_server};

use fudo::sessions::{
    RedisStoreOptions, SessionConfig, SessionSnapshot, SessionStore, SessionTable, StepRequest,
};

const DIM: usize = 2;

fn req(seq: u64) -> StepRequest {
    StepRequest {
        model: "lstm".into(),
        model_version: "v1".into(),
        new_version: String::new(),
        session_id: "s".into(),
        seq: Some(seq),
        start: seq == 1,
        end: false,
        state_dim: DIM,
        min_epoch: 0,
    }
}

async fn node(url: &str) -> (SessionTable, SessionStore) {
    let store = SessionStore::redis(url, RedisStoreOptions::default())
        .await
        .expect("store");
    (
        SessionTable::new(store.clone(), SessionConfig::default()),
        store,
    )
}

async fn stored_seq(url: &str) -> u64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg("fudo:session:s")
        .query_async(&mut conn)
        .await
        .expect("get");
    SessionSnapshot::decode(&bytes).expect("snapshot").seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_cannot_overwrite_the_new_owners_state() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _redis = Redis::start(&bin, port, dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    let (a, store_a) = node(&url).await;
    let (b, store_b) = node(&url).await;

    for seq in 1..=3 {
        a.step(req(seq), count).await.expect("a steps");
    }
    store_a
        .flush(Duration::from_secs(2))
        .await
        .expect("flush a");
    // The session moves to b (b loads it, taking ownership) and advances there.
    for seq in 4..=6 {
        let o = b.step(req(seq), count).await.expect("b steps");
        assert_eq!(
            o.output.action,
            (seq - 1) as i64,
            "b continued from a's state"
        );
    }
    store_b
        .flush(Duration::from_secs(2))
        .await
        .expect("flush b");
    assert_eq!(stored_seq(&url).await, 6);

    // a still believes it owns the session (seq 3 in memory) and steps seq 4 again, as a
    // frozen node would after waking up: its write must be refused.
    a.step(req(4), count)
        .await
        .expect("a answers from its stale copy");
    store_a
        .flush(Duration::from_secs(2))
        .await
        .expect("flush a");
    assert_eq!(
        stored_seq(&url).await,
        6,
        "the stale owner's write was fenced"
    );
    assert_eq!(store_a.health().fenced_total, 1);

    // The client brings the session back to a: a reloads (and takes ownership back) instead
    // of answering from its stale copy.
    let o = a
        .step(req(7), count)
        .await
        .expect("a reloads and continues");
    assert_eq!(o.output.action, 6, "continued from b's seq 6");
    store_a
        .flush(Duration::from_secs(2))
        .await
        .expect("flush a");
    assert_eq!(stored_seq(&url).await, 7);
    // And now b is the stale one.
    b.step(req(7), count)
        .await
        .expect("b steps seq 7 again from its stale copy");
    b.step(req(8), count)
        .await
        .expect("b steps from its stale copy");
    store_b
        .flush(Duration::from_secs(2))
        .await
        .expect("flush b");
    assert_eq!(stored_seq(&url).await, 7, "b's late write was fenced too");
    // b wrote twice (seq 7 and 8): one fenced write when the store coalesced them, two when
    // the first was already on its way; either way nothing of b's landed.
    let fenced = store_b.health().fenced_total;
    assert!((1..=2).contains(&fenced), "fenced {fenced}");
}
