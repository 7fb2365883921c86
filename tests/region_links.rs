//! Region links between real `fudo serve` processes: membership converges, a frozen or killed
//! peer is declared dead within a second (and a thawed one comes back), a link with the wrong
//! token is refused, and a node short of capacity spills requests to its peer.

#[path = "support/fudo_process.rs"]
mod fudo_process;
#[path = "support/oip_requests.rs"]
mod oip_requests;
#[path = "support/redis_process.rs"]
mod redis_process;

use std::time::{Duration, Instant};

use fudo::api::proto::{
    fudo::v1::{MembersRequest, MembersResponse, cluster_client::ClusterClient},
    inference::{
        grpc_inference_service_client::GrpcInferenceServiceClient, infer_parameter::ParameterChoice,
    },
};
use fudo_process::FudoProcess;
use oip_requests::obs_request;
use redis_process::free_port;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A planned cluster: one node per `(name, region)`, each with every other node as a peer.
struct Plan {
    nodes: Vec<(String, String)>,
    addrs: Vec<String>,
    extra: Vec<String>,
}

impl Plan {
    fn new(nodes: &[(&str, &str)], extra: &[&str]) -> Self {
        Self {
            nodes: nodes
                .iter()
                .map(|(n, r)| ((*n).to_owned(), (*r).to_owned()))
                .collect(),
            addrs: nodes
                .iter()
                .map(|_| format!("127.0.0.1:{}", free_port()))
                .collect(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Starts node `i` (again, after a kill: same name and address, a new incarnation).
    fn start(&self, i: usize) -> FudoProcess {
        let (name, region) = &self.nodes[i];
        let peers: Vec<String> = self
            .addrs
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, a)| format!("\"http://{a}\""))
            .collect();
        let settings = [
            format!("server.node_name={name}"),
            format!("server.region={region}"),
            format!("server.az={region}-a"),
            format!("cluster.peers=[{}]", peers.join(",")),
        ];
        let mut args: Vec<&str> = Vec::new();
        for s in &settings {
            args.extend(["--set", s]);
        }
        args.extend(self.extra.iter().map(String::as_str));
        FudoProcess::start_at(&self.addrs[i], &args)
    }

    fn start_all(&self) -> Vec<FudoProcess> {
        (0..self.nodes.len()).map(|i| self.start(i)).collect()
    }
}

fn start_cluster(nodes: &[(&str, &str)], extra: &[&str]) -> Vec<FudoProcess> {
    Plan::new(nodes, extra).start_all()
}

async fn members(url: &str) -> MembersResponse {
    let mut c = ClusterClient::connect(url.to_owned())
        .await
        .expect("connect");
    c.members(MembersRequest {})
        .await
        .expect("members")
        .into_inner()
}

fn state_of(view: &MembersResponse, node: &str) -> Option<String> {
    view.members
        .iter()
        .find(|m| m.identity.as_ref().is_some_and(|i| i.node == node))
        .map(|m| m.state.clone())
}

/// Polls `observer` every 10 ms until it sees `node` in `state`; the time it took.
async fn wait_state(observer: &str, node: &str, state: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if state_of(&members(observer).await, node).as_deref() == Some(state) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{observer} did not see {node} {state} within {limit:?}: {:?}",
            members(observer).await.members
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_and_killed_peers_are_declared_dead_within_a_second() {
    let plan = Plan::new(
        &[("tk-a", "tokyo"), ("tk-b", "tokyo"), ("os-a", "osaka")],
        &[],
    );
    let mut nodes = plan.start_all();
    let (a, b, c) = (nodes[0].url(), nodes[1].url(), nodes[2].url());
    for (observer, peer) in [(&a, "tk-b"), (&a, "os-a"), (&b, "os-a"), (&c, "tk-a")] {
        wait_state(observer, peer, "alive", Duration::from_secs(20)).await;
    }
    let view = members(&a).await;
    assert_eq!(view.self_.as_ref().map(|s| s.node.as_str()), Some("tk-a"));
    let osaka = view
        .members
        .iter()
        .find(|m| m.identity.as_ref().is_some_and(|i| i.node == "os-a"))
        .expect("os-a listed");
    assert_eq!(
        osaka.identity.as_ref().map(|i| i.region.as_str()),
        Some("osaka")
    );
    assert!(
        // Loopback: well under a millisecond, unless the machine is very busy.
        osaka.rtt_ms > 0.0 && osaka.rtt_ms < 1000.0,
        "rtt {}",
        osaka.rtt_ms
    );
    assert!(
        osaka
            .load
            .as_ref()
            .is_some_and(|l| l.serving && !l.models.is_empty())
    );
    let metrics = nodes[0].scrape();
    for line in [
        "fudo_cluster_members{state=\"alive\"} 2",
        "fudo_cluster_members{state=\"dead\"} 0",
        "fudo_serving 1",
        "fudo_cluster_link_rtt_seconds{peer=\"os-a\"}",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
    }

    // Freeze os-a: both Tokyo nodes declare it dead within a second; thawed, it is back.
    signal(nodes[2].pid(), "-STOP");
    let frozen_detect = wait_state(&a, "os-a", "dead", Duration::from_secs(3)).await;
    wait_state(&b, "os-a", "dead", Duration::from_secs(3)).await;
    signal(nodes[2].pid(), "-CONT");
    let back = wait_state(&a, "os-a", "alive", Duration::from_secs(5)).await;

    // Kill tk-b outright.
    signal(nodes[1].pid(), "-KILL");
    let killed_detect = wait_state(&a, "tk-b", "dead", Duration::from_secs(3)).await;
    let view = members(&a).await;
    assert!(
        view.load.as_ref().is_some_and(|l| l.serving),
        "2 of 3 reachable is a majority: {:?}",
        view.load
    );
    println!(
        "{}",
        serde_json::json!({
            "frozen_peer_detected_ms": frozen_detect.as_millis() as u64,
            "thawed_peer_alive_ms": back.as_millis() as u64,
            "killed_peer_detected_ms": killed_detect.as_millis() as u64,
        })
    );
    assert!(
        frozen_detect <= Duration::from_millis(1000),
        "{frozen_detect:?}"
    );
    assert!(
        killed_detect <= Duration::from_millis(1000),
        "{killed_detect:?}"
    );

    // tk-b comes back on its address as a new process: the link redials it and, after the
    // stability window, it is alive again as a new incarnation.
    let find = |view: MembersResponse| {
        view.members
            .into_iter()
            .find(|m| m.identity.as_ref().is_some_and(|i| i.node == "tk-b"))
            .expect("tk-b listed")
    };
    let old = find(members(&a).await);
    nodes[1] = plan.start(1);
    wait_state(&a, "tk-b", "alive", Duration::from_secs(20)).await;
    let new = find(members(&a).await);
    assert!(
        new.connects > old.connects,
        "{} then {}",
        old.connects,
        new.connects
    );
    assert_ne!(
        new.identity.map(|i| i.incarnation),
        old.identity.map(|i| i.incarnation)
    );
    assert!(new.deaths >= 1, "deaths {}", new.deaths);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_majority_and_the_store_is_fenced() {
    // Every node's session store points at a port nobody listens on: degraded from the start.
    let dead_redis = format!("sessions.redis_url=redis://127.0.0.1:{}", free_port());
    let nodes = start_cluster(
        &[("tk-a", "tokyo"), ("tk-b", "tokyo"), ("os-a", "osaka")],
        &["--set", "sessions.backend=redis", "--set", &dead_redis],
    );
    let a = nodes[0].url();
    wait_state(&a, "tk-b", "alive", Duration::from_secs(20)).await;
    wait_state(&a, "os-a", "alive", Duration::from_secs(20)).await;
    let serving = ServingStatus::Serving as i32;
    assert_eq!(health(&a).await, serving, "a majority: still serving");
    signal(nodes[1].pid(), "-KILL");
    signal(nodes[2].pid(), "-KILL");
    wait_state(&a, "tk-b", "dead", Duration::from_secs(3)).await;
    wait_state(&a, "os-a", "dead", Duration::from_secs(3)).await;
    let start = Instant::now();
    while health(&a).await == serving {
        assert!(start.elapsed() < Duration::from_secs(2), "not fenced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load = members(&a).await.load.expect("load");
    assert!(
        !load.serving && load.reason.starts_with("fenced"),
        "{load:?}"
    );
}

async fn health(url: &str) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_with_the_wrong_token_are_refused() {
    let addr_a = format!("127.0.0.1:{}", free_port());
    let addr_b = format!("127.0.0.1:{}", free_port());
    let peer_of = |addr: &str| format!("cluster.peers=[\"http://{addr}\"]");
    let (pa, pb) = (peer_of(&addr_b), peer_of(&addr_a));
    let a = FudoProcess::start_at(
        &addr_a,
        &[
            "--set",
            &pa,
            "--set",
            "cluster.link_token=alpha",
            "--set",
            "server.node_name=a",
        ],
    );
    let b = FudoProcess::start_at(
        &addr_b,
        &[
            "--set",
            &pb,
            "--set",
            "cluster.link_token=bravo",
            "--set",
            "server.node_name=b",
        ],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for p in [&a, &b] {
        let view = members(&p.url()).await;
        let m = &view.members[0];
        assert_eq!(m.state, "joining", "{m:?}");
        assert_eq!(m.connects, 0, "{m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_short_of_capacity_spills_to_its_peer() {
    // spill_queue_ratio 0: tk-a counts itself short of capacity for every request.
    let nodes = start_cluster(
        &[("tk-a", "tokyo"), ("os-a", "osaka")],
        &["--set", "cluster.spill_queue_ratio=0"],
    );
    wait_state(&nodes[0].url(), "os-a", "alive", Duration::from_secs(20)).await;
    // Wait for a heartbeat that carries os-a's load: serving, with a live shard of the model.
    let start = Instant::now();
    loop {
        let view = members(&nodes[0].url()).await;
        let ready = view.members.iter().any(|m| {
            m.load.as_ref().is_some_and(|l| {
                l.serving
                    && l.models
                        .iter()
                        .any(|x| x.name == "ppo_mlp" && x.live_shards > 0 && x.free_slots > 0)
            })
        });
        if ready {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{view:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = GrpcInferenceServiceClient::connect(nodes[0].url())
        .await
        .expect("connect");
    let response = client
        .model_infer(obs_request("ppo_mlp", 1, &[0.1; 32]))
        .await
        .expect("spilled request answered")
        .into_inner();
    let param = |name: &str| match response
        .parameters
        .get(name)
        .and_then(|p| p.parameter_choice.clone())
    {
        Some(ParameterChoice::StringParam(s)) => s,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(param("fudo_spilled_from"), "tk-a");
    assert!(
        param("served_by").starts_with("os-a/"),
        "{}",
        param("served_by")
    );
    assert!(members(&nodes[0].url()).await.spilled_requests >= 1);

    // With the peer dead, the node serves the request itself rather than fail it.
    signal(nodes[1].pid(), "-KILL");
    wait_state(&nodes[0].url(), "os-a", "dead", Duration::from_secs(3)).await;
    let response = client
        .model_infer(obs_request("ppo_mlp", 1, &[0.1; 32]))
        .await
        .expect("served locally")
        .into_inner();
    assert!(!response.parameters.contains_key("fudo_spilled_from"));
}
