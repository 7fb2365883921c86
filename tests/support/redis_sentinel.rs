//! A real Redis Sentinel setup for integration tests: a primary, one replica and one
//! `redis-sentinel` (quorum 1, fast failure detection), on ports of their own in a temp dir.
//! Every process is killed (by its own `Child`, i.e. its pid) when dropped.
//!
//! Include it next to `redis_process.rs`, which must be declared as `mod redis_process`.

#![allow(dead_code)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::redis_process::{Redis, free_port, redis_binary};

/// The master name the sentinel monitors.
pub const MASTER: &str = "mymaster";

/// Primary, replica and sentinel, all on 127.0.0.1.
pub struct SentinelSetup {
    pub primary_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    primary: Option<Redis>,
    replica: Redis,
    sentinel: Sentinel,
}

impl SentinelSetup {
    /// Starts everything in `dir` and waits until the replica is in sync and the sentinel
    /// knows both nodes. `None` when a binary is missing (and `FUDO_REQUIRE_REDIS` is not 1).
    pub fn start(dir: &Path) -> Option<Self> {
        let server = redis_binary("redis-server")?;
        let sentinel_bin = redis_binary("redis-sentinel")?;
        let (primary_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
        let sub = |name: &str| {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).expect("create dir");
            d
        };
        // Redis 7 waits 5 s (repl-diskless-sync-delay) before a full sync, as long as the waits
        // below: start replicas at once, on both servers (either may be primary later).
        let no_delay = ["--repl-diskless-sync-delay", "0"];
        let primary = Redis::start_with(&server, primary_port, &sub("primary"), &no_delay);
        let replica = Redis::start_with(
            &server,
            replica_port,
            &sub("replica"),
            &[
                "--replicaof",
                "127.0.0.1",
                &primary_port.to_string(),
                no_delay[0],
                no_delay[1],
            ],
        );
        wait_until("the replica to sync", Duration::from_secs(5), || {
            info(replica_port, "replication").contains("master_link_status:up")
        });
        let sentinel =
            Sentinel::start(&sentinel_bin, sentinel_port, primary_port, &sub("sentinel"));
        // Sentinel learns of the replica from the primary's INFO and then asks the replica
        // itself; both are repeated every 10 s, so one missed round (a connect that lost a race
        // on a loaded machine) costs 10 s. Wait out one round, not half of one.
        wait_until(
            "the sentinel to see the replica",
            Duration::from_secs(12),
            || sentinel_replicas(sentinel_port) > 0,
        );
        Some(Self {
            primary_port,
            replica_port,
            sentinel_port,
            primary: Some(primary),
            replica,
            sentinel,
        })
    }

    /// SIGKILLs the primary.
    pub fn kill_primary(&mut self) {
        if let Some(p) = self.primary.take() {
            p.kill();
        }
    }

    /// The primary the sentinel names now.
    pub fn current_primary(&self) -> Option<(String, u16)> {
        let mut conn = sync_conn(self.sentinel_port)?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER)
            .query(&mut conn)
            .ok()
            .flatten()
    }
}

/// A `redis-sentinel` child process, killed on drop.
struct Sentinel {
    child: Child,
}

impl Sentinel {
    fn start(bin: &Path, port: u16, primary_port: u16, dir: &Path) -> Self {
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 500\n\
                 sentinel failover-timeout {MASTER} 2000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir = dir.display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new(bin)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-sentinel");
        let sentinel = Sentinel { child };
        wait_until("redis-sentinel to listen", Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        sentinel
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sync_conn(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(("127.0.0.1", port)).ok()?;
    client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()
}

fn info(port: u16, section: &str) -> String {
    sync_conn(port)
        .and_then(|mut c| redis::cmd("INFO").arg(section).query(&mut c).ok())
        .unwrap_or_default()
}

/// Replicas the sentinel has connected to and heard `INFO` from (so it could promote them).
fn sentinel_replicas(port: u16) -> usize {
    let replicas: Vec<std::collections::HashMap<String, String>> = sync_conn(port)
        .and_then(|mut c| {
            redis::cmd("SENTINEL")
                .arg("replicas")
                .arg(MASTER)
                .query(&mut c)
                .ok()
        })
        .unwrap_or_default();
    replicas
        .iter()
        .filter(|r| {
            r.get("flags").map(String::as_str) == Some("slave")
                && r.get("master-link-status").map(String::as_str) == Some("ok")
                && r.get("info-refresh")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .is_some_and(|ms| ms < 5_000)
        })
        .count()
}

/// Polls `cond` every 20 ms; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
