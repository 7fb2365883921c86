//! The local cluster launcher against real processes: `fudo serve` nodes and a real
//! `redis-server`, a node restarted after SIGKILL the way systemd's `Restart=always` does,
//! and nothing left running after stop.

#[path = "support/redis_process.rs"]
mod redis_process;

use std::time::{Duration, Instant};

use fudo::cluster::{Cluster, ClusterSpec, RedisMode, RegionSpec, Topology, node_serving};
use nix::{sys::signal::Signal, unistd::Pid};

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_restart_after_a_kill_and_stop_cleanly() {
    if redis_process::redis_server().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = ClusterSpec::local(dir.path().join("cluster")).expect("spec");
    spec.fudo_exe = env!("CARGO_BIN_EXE_fudo").into();
    spec.topology = Topology {
        regions: vec![RegionSpec {
            name: "tokyo".into(),
            azs: vec!["tokyo-a".into(), "tokyo-c".into()],
        }],
        nodes_per_az: 1,
    };
    spec.redis = RedisMode::Single;
    spec.node_restart_delay = Duration::from_millis(200);
    let cluster = Cluster::start(spec).await.expect("cluster starts");
    let names: Vec<&str> = cluster
        .nodes()
        .iter()
        .map(|n| n.place.name.as_str())
        .collect();
    assert_eq!(names, ["tokyo-a-1", "tokyo-c-1"]);
    let endpoints = cluster.endpoints();
    assert_eq!(
        (endpoints[1].region.as_str(), endpoints[1].az.as_str()),
        ("tokyo", "tokyo-c")
    );
    let described = cluster.describe();
    assert!(
        described["redis"]
            .as_str()
            .is_some_and(|u| u.starts_with("redis://"))
    );

    let node = cluster.node("tokyo-a-1").expect("node");
    let first = node.process.pid().expect("running");
    node.process.signal(Signal::SIGKILL).expect("kill");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let restarted =
            node.process.starts() == 2 && node.process.pid().is_some_and(|p| p != first);
        if restarted && node_serving(node.grpc).await {
            break;
        }
        assert!(
            Instant::now() < until,
            "the killed node did not come back SERVING in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cluster.node("nope").is_err());

    let pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .filter_map(|n| n.process.pid())
        .collect();
    assert_eq!(pids.len(), 2);
    cluster.stop().await;
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still running after stop");
    }
}
