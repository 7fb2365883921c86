//! A recurrent session survives its node dying with steps that never reached Redis: the client
//! library moves the session to another node, which answers with the seq its snapshot expects,
//! and the client resends its buffered steps before the current one. The actions equal those
//! of a fault-free run.

#[path = "support/fudo_process.rs"]
mod fudo_process;
#[path = "support/oip_requests.rs"]
mod oip_requests;
#[path = "support/redis_process.rs"]
mod redis_process;

use std::time::Duration;

use fudo::{
    chaos::proxy::FaultProxy,
    client::{ClientConfig, Endpoint, FudoClient},
};
use fudo_process::FudoProcess;
use oip_requests::step_request;
use redis_process::{Redis, free_port, redis_server};

fn obs(seq: i64) -> Vec<f32> {
    (0..32)
        .map(|i| ((seq * 31 + i) as f32 * 0.37).sin())
        .collect()
}

fn action(resp: &fudo::api::proto::inference::ModelInferResponse) -> i64 {
    let i = resp
        .outputs
        .iter()
        .position(|o| o.name == "action")
        .expect("action output");
    let raw = &resp.raw_output_contents[i];
    i64::from_le_bytes(raw[..8].try_into().expect("8 bytes"))
}

fn served_by(resp: &fudo::api::proto::inference::ModelInferResponse) -> String {
    use fudo::api::proto::inference::infer_parameter::ParameterChoice;
    match resp
        .parameters
        .get("served_by")
        .and_then(|p| p.parameter_choice.as_ref())
    {
        Some(ParameterChoice::StringParam(s)) => s.clone(),
        _ => String::new(),
    }
}

/// A client over `nodes`, preferring the first (the others are in another region).
async fn client(nodes: &[&FudoProcess]) -> FudoClient {
    let endpoints = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Endpoint {
            url: n.url(),
            region: if i == 0 { "tokyo" } else { "osaka" }.into(),
            az: "a".into(),
        })
        .collect();
    let mut config = ClientConfig::new(endpoints);
    config.deadline = Duration::from_secs(2);
    config.preferred_region = Some("tokyo".into());
    FudoClient::connect(config).await.expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_continues_on_another_node_after_losing_unflushed_steps() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _redis = Redis::start(&bin, port, dir.path());
    let redis_url = format!("sessions.redis_url=redis://127.0.0.1:{port}");
    let args = ["--set", "sessions.backend=redis", "--set", &redis_url];

    // Fault-free reference on one node.
    let reference: Vec<i64> = {
        let node = FudoProcess::start(&args);
        let c = client(&[&node]).await;
        let mut out = Vec::new();
        for seq in 1..=15 {
            let r = c
                .infer_session("ref", step_request("ref", seq, &obs(seq)))
                .await
                .expect("step");
            out.push(action(&r));
        }
        out
    };

    // Node a reaches Redis through a fault proxy, so its writes can be held back and lost.
    let proxy = FaultProxy::start(
        "127.0.0.1:0".parse().expect("addr"),
        ([127, 0, 0, 1], port).into(),
    )
    .await
    .expect("proxy");
    let via_proxy = format!("sessions.redis_url=redis://{}", proxy.local_addr());
    let with = |name: &'static str, url: &str| -> Vec<String> {
        [
            "--set",
            "sessions.backend=redis",
            "--set",
            url,
            "--set",
            &format!("server.node_name={name}"),
        ]
        .map(String::from)
        .to_vec()
    };
    let (args_a, args_b) = (with("node-a", &via_proxy), with("node-b", &redis_url));
    let a = FudoProcess::start(&args_a.iter().map(String::as_str).collect::<Vec<_>>());
    let b = FudoProcess::start(&args_b.iter().map(String::as_str).collect::<Vec<_>>());
    let c = client(&[&a, &b]).await;
    let mut actions = Vec::new();
    let mut served = Vec::new();
    let step = |seq: i64| {
        let c = c.clone();
        async move {
            c.infer_session("s", step_request("s", seq, &obs(seq)))
                .await
        }
    };
    for seq in 1..=5 {
        let r = step(seq).await.expect("step");
        actions.push(action(&r));
        served.push(served_by(&r));
    }
    assert!(
        served.iter().all(|s| s.starts_with("node-a/")),
        "the session starts and stays on node a: {served:?}"
    );
    // Let steps 1-5 become durable, then hold a's Redis traffic so steps 6-10 stay in a.
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.control().stall(true);
    for seq in 6..=10 {
        let r = step(seq).await.expect("step");
        actions.push(action(&r));
    }
    // SIGKILL a; the writes it had in flight die with it (the proxy drops what it held).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    proxy.control().refuse(true);
    for seq in 11..=15 {
        let r = step(seq)
            .await
            .expect("the session continues on the other node");
        actions.push(action(&r));
    }
    assert_eq!(actions, reference, "actions differ from the fault-free run");
    assert_eq!(
        c.stats().replays,
        5,
        "steps 6-10 were resent to the new node"
    );
}
