//! The Redis session store behind Redis Sentinel, against real processes: a primary, a replica
//! and one sentinel. The primary is SIGKILLed while sessions keep writing; Sentinel promotes
//! the replica, the store rediscovers the primary through the sentinel, stops being degraded,
//! and every session's latest snapshot is on the new primary: nothing buffered was lost.
//!
//! A second test turns the primary into a replica under the store's feet (`SENTINEL FAILOVER`
//! and `REPLICAOF` on the old primary, no process dies): the store's next write gets `READONLY`, drops the connection and finds
//! the promoted primary through the sentinel.
//!
//! Needs `redis-server` and `redis-sentinel` on PATH. Without them the test prints a skip
//! notice and passes, unless `FUDO_REQUIRE_REDIS=1` (CI), where it fails.

#[path = "support/redis_process.rs"]
mod redis_process;
#[path = "support/redis_sentinel.rs"]
mod redis_sentinel;
#[path = "support/session_steps.rs"]
mod session_steps;

use session_steps::fast_options;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use redis_sentinel::{MASTER, SentinelSetup};

use fudo::sessions::{SessionSnapshot, SessionStore, StoreError};

const ACTIVE: usize = 8;
const QUIET: usize = 4;

fn snapshot(seq: u64) -> SessionSnapshot {
    SessionSnapshot {
        model: "lstm".into(),
        model_version: "v3".into(),
        seq,
        ended: false,
        state: vec![seq as f32; 3],
        results: VecDeque::new(),
        recent_obs: VecDeque::new(),
    }
}

async fn direct(port: u16) -> redis::aio::MultiplexedConnection {
    // WAIT blocks up to its own timeout (2 s here), longer than the client's default 500 ms.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(("127.0.0.1", port))
        .expect("client")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect directly")
}

async fn stored(conn: &mut redis::aio::MultiplexedConnection, id: &str) -> Option<u64> {
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("fudo:session:{id}"))
        .query_async(conn)
        .await
        .expect("GET");
    bytes.map(|b| SessionSnapshot::decode(&b).expect("decodable").seq)
}

#[test]
fn malformed_sentinel_url_is_rejected() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt
        .block_on(SessionStore::redis(
            "redis+sentinel://127.0.0.1:1",
            fast_options(),
        ))
        .expect_err("no master name");
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err}");
}

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("fudo=info")
        .try_init();
}

async fn role(port: u16) -> redis::Role {
    redis::cmd("ROLE")
        .query_async(&mut direct(port).await)
        .await
        .expect("ROLE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_loses_nothing() {
    logs();
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(mut redis) = SentinelSetup::start(dir.path()) else {
        return;
    };
    let url = format!(
        "redis+sentinel://127.0.0.1:1,127.0.0.1:{}/{MASTER}",
        redis.sentinel_port
    );
    let store = SessionStore::redis(&url, fast_options())
        .await
        .expect("store over sentinel");
    assert!(!store.health().degraded, "{:?}", store.health());

    // Before the failover: every session written, acknowledged and replicated.
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    let ids: Vec<String> = (0..ACTIVE)
        .map(|i| format!("active-{i}"))
        .chain((0..QUIET).map(|i| format!("quiet-{i}")))
        .collect();
    for seq in 1..=3 {
        for id in &ids {
            store.write(id, &snapshot(seq));
            latest.insert(id.clone(), seq);
        }
    }
    store.flush(Duration::from_secs(2)).await.expect("flush");
    let mut old = direct(redis.primary_port).await;
    for id in &ids {
        assert_eq!(stored(&mut old, id).await, Some(3), "{id}");
    }
    let replicated: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut old)
        .await
        .expect("WAIT");
    assert_eq!(replicated, 1, "the replica acknowledged the writes");
    drop(old);

    // Kill the primary and keep writing the active sessions through the failover.
    redis.kill_primary();
    let mut seq = 3;
    let mut was_degraded = false;
    let mut recovered_rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recovered_rounds < 5 {
        assert!(
            Instant::now() < deadline,
            "store did not recover: {:?}; sentinel names {:?}",
            store.health(),
            redis.current_primary()
        );
        seq += 1;
        for id in ids.iter().take(ACTIVE) {
            store.write(id, &snapshot(seq));
            latest.insert(id.clone(), seq);
        }
        let health = store.health();
        if health.degraded {
            was_degraded = true;
            // Loads during the gap read the buffer first.
            let loaded = store.load("active-0").await.expect("buffered load");
            assert_eq!(loaded.map(|s| s.seq), Some(seq));
        } else if was_degraded {
            recovered_rounds += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.flush(Duration::from_secs(3)).await.expect("flush");
    let health = store.health();
    assert!(!health.degraded, "{health:?}");
    assert_eq!(health.buffered_writes, 0, "{health:?}");

    // The sentinel promoted the replica, and it holds every session's latest snapshot.
    assert_eq!(
        redis.current_primary(),
        Some(("127.0.0.1".to_owned(), redis.replica_port))
    );
    let role = role(redis.replica_port).await;
    assert!(matches!(role, redis::Role::Primary { .. }), "{role:?}");
    let mut new = direct(redis.replica_port).await;
    for (id, seq) in &latest {
        assert_eq!(stored(&mut new, id).await, Some(*seq), "{id}");
        assert_eq!(store.durable_watermark(id), *seq, "{id}");
    }
    assert!(seq > 4, "writes continued through the failover");
    eprintln!(
        "failover test: {} rounds of writes after the kill, {:?} in all",
        seq - 3,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demoted_primary_readonly_rediscovers() {
    logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(redis) = SentinelSetup::start(dir.path()) else {
        return;
    };
    let url = format!(
        "redis+sentinel://127.0.0.1:{}/{MASTER}/0",
        redis.sentinel_port
    );
    let store = SessionStore::redis(&url, fast_options())
        .await
        .expect("store over sentinel");
    store.write("s", &snapshot(1));
    store.flush(Duration::from_secs(2)).await.expect("flush");

    // Swap the roles; the store's connection to the old primary stays open.
    let mut sentinel = direct(redis.sentinel_port).await;
    let () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(MASTER)
        .query_async(&mut sentinel)
        .await
        .expect("SENTINEL FAILOVER");
    let deadline = Instant::now() + Duration::from_secs(8);
    while redis.current_primary() != Some(("127.0.0.1".to_owned(), redis.replica_port)) {
        assert!(Instant::now() < deadline, "manual failover did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Sentinel demotes a still-running old primary only after 8 s; do it now, as it would.
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(redis.replica_port)
        .query_async(&mut direct(redis.primary_port).await)
        .await
        .expect("REPLICAOF");
    assert!(matches!(
        role(redis.primary_port).await,
        redis::Role::Replica { .. }
    ));

    // The next write meets READONLY on the old connection, then lands on the new primary.
    store.write("s", &snapshot(2));
    store.flush(Duration::from_secs(3)).await.expect("flush");
    let health = store.health();
    assert!(!health.degraded, "{health:?}");
    let last_error = health.last_error.unwrap_or_default().to_lowercase();
    assert!(
        last_error.contains("readonly") || last_error.contains("read only"),
        "{last_error}"
    );
    let mut new = direct(redis.replica_port).await;
    assert_eq!(stored(&mut new, "s").await, Some(2));
    assert_eq!(store.durable_watermark("s"), 2);
}
