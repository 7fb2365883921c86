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

use fudo::client::{ClientConfig, Endpoint, FudoClient};
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

async fn client(nodes: &[&FudoProcess]) -> FudoClient {
    let endpoints = nodes
        .iter()
        .map(|n| Endpoint {
            url: n.url(),
            region: "tokyo".into(),
            az: "tokyo-a".into(),
        })
        .collect();
    let mut config = ClientConfig::new(endpoints);
    config.deadline = Duration::from_secs(2);
    FudoClient::connect(config).await.expect("client")
}

async fn redis_cmd(port: u16, args: &[&str]) {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
    let mut conn = c.get_multiplexed_async_connection().await.expect("connect");
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(&mut conn).await.expect("redis command");
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

    let with_name = |name: &'static str| {
        let mut v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        v.extend(["--set".to_owned(), format!("server.node_name={name}")]);
        v
    };
    let (args_a, args_b) = (with_name("node-a"), with_name("node-b"));
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
    // Let steps 1-5 become durable, then hold every write so steps 6-10 stay in the node.
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis_cmd(port, &["CLIENT", "PAUSE", "10000", "WRITE"]).await;
    for seq in 6..=10 {
        let r = step(seq).await.expect("step");
        actions.push(action(&r));
    }
    // SIGKILL whichever node owns the session; its unflushed writes die with it.
    let owner = if served[4].starts_with("node-a/") {
        &a
    } else {
        &b
    };
    let node = |s: &String| s.split('/').next().unwrap_or_default().to_owned();
    assert!(
        served.iter().all(|s| node(s) == node(&served[0])),
        "sticky: {served:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    redis_cmd(port, &["CLIENT", "UNPAUSE"]).await;
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
