//! The session table against a real `redis-server`: write-through snapshots, continuing a
//! session from Redis in a fresh table, and surviving a Redis outage (degraded, buffered,
//! flushed on reconnection).
//!
//! Needs `redis-server` on PATH. Without it the Redis-backed test prints a skip notice and
//! passes, unless `FUDO_REQUIRE_REDIS=1` (CI), where it fails.

#[path = "support/redis_process.rs"]
mod redis_process;
#[path = "support/session_steps.rs"]
mod session_steps;

use session_steps::{DIM, count, fast_options, req, step};
use std::time::{Duration, Instant};

use redis_process::{Redis, free_port, redis_server};

use fudo::sessions::{
    SessionConfig, SessionError, SessionSnapshot, SessionStore, SessionTable, StepError,
};

async fn stored(url: &str, session: &str) -> Option<SessionSnapshot> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("fudo:session:{session}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    bytes.map(|b| SessionSnapshot::decode(&b).expect("decodable snapshot"))
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_restart_and_outage() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let redis = Redis::start(&bin, port, dir.path());

    // Write-through: the snapshot in Redis holds the latest seq, state and results.
    let store = SessionStore::redis(&url, fast_options()).await.unwrap();
    assert!(!store.health().degraded, "{:?}", store.health());
    let t1 = SessionTable::new(store.clone(), SessionConfig::default());
    let first = step(&t1, req("s1", Some(1), true)).await;
    let mut outs = vec![first];
    for _ in 2..=5 {
        outs.push(step(&t1, req("s1", None, false)).await);
    }
    store.flush(Duration::from_secs(2)).await.unwrap();
    let snap = stored(&url, "s1").await.expect("snapshot in redis");
    assert_eq!((snap.seq, snap.ended), (5, false));
    assert_eq!(
        (snap.model.as_str(), snap.model_version.as_str()),
        ("lstm", "v3")
    );
    assert_eq!(snap.state, vec![5.0; DIM]);
    assert_eq!(snap.results.len(), 5);
    assert_eq!(snap.result(4), Some(&outs[3].output));
    let health = t1.store_health();
    assert_eq!(
        (health.backend, health.degraded, health.buffered_writes),
        ("redis", false, 0)
    );
    assert!(health.flushed_total >= 1);
    let replay = step(&t1, req("s1", Some(5), false)).await;
    assert!(replay.replayed);
    assert_eq!(replay.durable_watermark, 5, "acknowledged by redis");
    drop(t1);
    drop(store);

    // A fresh table on the same Redis continues the session from its stored seq and state.
    let store = SessionStore::redis(&url, fast_options()).await.unwrap();
    let t2 = SessionTable::new(store.clone(), SessionConfig::default());
    let replay = step(&t2, req("s1", Some(3), false)).await;
    assert!(replay.replayed);
    assert_eq!(replay.output, outs[2].output);
    assert_eq!(replay.durable_watermark, 5);
    let o6 = step(&t2, req("s1", None, false)).await;
    assert_eq!((o6.seq, o6.output.action, o6.replayed), (6, 5, false));

    // Redis goes away: steps keep succeeding, writes are buffered, health says degraded.
    redis.kill();
    for seq in 7..=10 {
        let o = step(&t2, req("s1", Some(seq), false)).await;
        assert_eq!(o.output.action as u64, seq - 1);
    }
    wait_for("degraded health", Duration::from_secs(3), || {
        t2.store_health().degraded
    })
    .await;
    // Let a few retries fail: nothing buffered may be lost by a failed flush.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s3 = step(&t2, req("s3", None, true)).await;
    assert_eq!(
        (s3.seq, s3.output.action),
        (1, 0),
        "new sessions start during the outage"
    );
    let health = t2.store_health();
    assert!(health.degraded, "{health:?}");
    assert_eq!(
        health.buffered_writes, 2,
        "s1 and s3, coalesced: {health:?}"
    );
    assert!(health.last_error.is_some(), "{health:?}");
    assert!(t2.store().durable_watermark("s1") < 10);
    // A session that is not in memory cannot be loaded: a clear store error, quickly.
    let started = Instant::now();
    let err = t2
        .step(req("elsewhere", Some(4), false), count)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    match err {
        StepError::Session(e @ SessionError::Store { .. }) => {
            assert!(e.to_string().contains("retry"), "{e}")
        }
        other => panic!("expected a store error, got {other:?}"),
    }

    // Redis is back (empty, same port): the buffer flushes and health recovers.
    let _redis = Redis::start(&bin, port, dir.path());
    wait_for("recovery and flush", Duration::from_secs(5), || {
        let h = t2.store_health();
        !h.degraded && h.buffered_writes == 0
    })
    .await;
    let snap = stored(&url, "s1")
        .await
        .expect("s1 flushed after reconnection");
    assert_eq!(snap.seq, 10);
    assert_eq!(snap.state, vec![10.0; DIM]);
    assert_eq!(stored(&url, "s3").await.expect("s3 flushed").seq, 1);
    let replay = step(&t2, req("s1", Some(10), false)).await;
    assert!(replay.replayed);
    assert_eq!(replay.durable_watermark, 10);
    let o11 = step(&t2, req("s1", None, false)).await;
    assert_eq!((o11.seq, o11.output.action), (11, 10));
}

/// No server at all: the store is created degraded and the table keeps serving.
#[tokio::test]
async fn unreachable_redis_degrades_instead_of_failing() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let store = SessionStore::redis(&url, fast_options()).await.unwrap();
    let health = store.health();
    assert!(health.degraded && health.last_error.is_some(), "{health:?}");
    let t = SessionTable::new(store, SessionConfig::default());
    let o = step(&t, req("s", None, true)).await;
    assert_eq!((o.seq, o.durable_watermark), (1, 0));
    let o = step(&t, req("s", None, false)).await;
    assert_eq!((o.seq, o.output.action, o.durable_watermark), (2, 1, 0));
    assert_eq!(t.store_health().buffered_writes, 1, "coalesced per session");
    let err = t.step(req("other", None, false), count).await.unwrap_err();
    assert!(
        matches!(err, StepError::Session(SessionError::Store { .. })),
        "{err:?}"
    );
    assert!(
        SessionStore::redis("not a url", fast_options())
            .await
            .is_err()
    );
}
