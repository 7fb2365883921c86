//! `fudo serve` with Redis as the session store: a recurrent session survives the loss of the
//! node process (a new process continues it from Redis), and a Redis outage degrades
//! durability without failing a single inference.

#[path = "support/fudo_process.rs"]
mod fudo_process;
#[path = "support/oip_requests.rs"]
mod oip_requests;
#[path = "support/redis_process.rs"]
mod redis_process;

use std::time::Duration;

use fudo::api::proto::inference::{
    ModelInferRequest, ModelInferResponse,
    grpc_inference_service_client::GrpcInferenceServiceClient,
};
use fudo_process::FudoProcess;
use oip_requests::{int_param, step_request};
use redis_process::{Redis, free_port, redis_server};

fn step(session: &str, seq: i64) -> ModelInferRequest {
    let obs: Vec<f32> = (0..32)
        .map(|i| ((i * 5 + seq * 3) % 13) as f32 / 6.5 - 1.0)
        .collect();
    step_request(session, seq, &obs)
}

fn watermark(r: &ModelInferResponse) -> Option<i64> {
    int_param(r, "durable_watermark")
}

async fn steps(
    url: &str,
    session: &str,
    seqs: std::ops::RangeInclusive<i64>,
) -> Vec<ModelInferResponse> {
    let mut c = GrpcInferenceServiceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let mut out = Vec::new();
    for seq in seqs {
        out.push(
            c.model_infer(step(session, seq))
                .await
                .expect("step")
                .into_inner(),
        );
    }
    out
}

fn metric(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_node_restart_and_redis_outage() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let redis = Redis::start(&bin, port, dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    let args = ["--set", "sessions.backend=redis", "--set"];
    let redis_url = format!("sessions.redis_url={url}");
    let mut args: Vec<&str> = args.to_vec();
    args.push(&redis_url);

    // Fault-free reference: one process steps a session 1..=10.
    let reference = {
        let node = FudoProcess::start(&args);
        steps(&node.url(), "ref", 1..=10).await
    };

    // The same session, with the node process replaced after step 5.
    let mut node = FudoProcess::start(&args);
    let first = steps(&node.url(), "acct", 1..=5).await;
    // Wait until step 5 is durable before killing the node.
    assert_eq!(watermark(&first[4]).map(|w| w >= 4), Some(true));
    let mut durable = false;
    for _ in 0..100 {
        if metric(&node.scrape(), "fudo_session_store_buffered_writes") == Some(0.0) {
            durable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(durable, "session writes never reached Redis");
    node.terminate(Duration::from_secs(5));
    let node = FudoProcess::start(&args);
    let second = steps(&node.url(), "acct", 6..=10).await;
    let logits = |r: &ModelInferResponse| r.raw_output_contents[1].clone();
    let continued: Vec<_> = first.iter().chain(&second).map(logits).collect();
    let expected: Vec<_> = reference.iter().map(logits).collect();
    assert_eq!(
        continued, expected,
        "the session did not continue where it was"
    );

    // Redis goes away: inference goes on, durability is reported degraded.
    redis.kill();
    let during = steps(&node.url(), "acct", 11..=15).await;
    assert_eq!(during.len(), 5);
    let mut degraded = false;
    for _ in 0..100 {
        let scrape = node.scrape();
        if metric(&scrape, "fudo_session_store_degraded") == Some(1.0)
            && metric(&scrape, "fudo_session_store_buffered_writes").unwrap_or(0.0) >= 1.0
        {
            degraded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(degraded, "a Redis outage was not reported as degraded");

    // Redis is back (empty: no persistence): the buffer flushes and the node recovers.
    let _redis = Redis::start(&bin, port, dir.path());
    let mut recovered = false;
    for _ in 0..250 {
        let scrape = node.scrape();
        if metric(&scrape, "fudo_session_store_degraded") == Some(0.0)
            && metric(&scrape, "fudo_session_store_buffered_writes") == Some(0.0)
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        recovered,
        "the session store did not recover after Redis came back"
    );
    let after = steps(&node.url(), "acct", 16..=16).await;
    assert_eq!(watermark(&after[0]).map(|w| w >= 15), Some(true));
}
