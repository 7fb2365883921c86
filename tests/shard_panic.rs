//! Shards panic again and again under concurrent load, and no client sees an error.
//!
//! A real `fudo serve` process takes stateless requests from several concurrent clients and
//! recurrent session steps, while the admin API panics its shards: half the time inside the
//! forward pass (a batch is in flight and must be re-dispatched), half the time in the actor.
//! The test checks: zero failed requests, shards really restarted, in-flight work really
//! re-dispatched, recurrent sessions identical to a fault-free run; and prints the restart
//! latency the node measured (failure → replacement serving), median and p99.

#[path = "support/fudo_process.rs"]
mod fudo_process;
#[path = "support/oip_requests.rs"]
mod oip_requests;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use fudo::api::proto::{
    fudo::v1::{PanicActorRequest, TreeRequest, admin_client::AdminClient},
    inference::grpc_inference_service_client::GrpcInferenceServiceClient,
};
use fudo_process::FudoProcess;
use oip_requests::{obs_request, step_request};

fn obs(i: u64) -> Vec<f32> {
    (0..32u64)
        .map(|j| (((i * 31 + j * 17) % 97) as f32 / 48.5) - 1.0)
        .collect()
}

/// Steps a session through `steps` observations and returns the logits bytes of each step.
async fn run_session(url: String, id: String, steps: i64) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let mut c = GrpcInferenceServiceClient::connect(url)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut out = Vec::new();
    for seq in 1..=steps {
        let r = c
            .model_infer(step_request(&id, seq, &obs(seq as u64)))
            .await?
            .into_inner();
        out.push(r.raw_output_contents[1].clone());
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_shard_panics_under_load_fail_no_request() {
    let p = FudoProcess::start(&[
        "--set",
        "chaos.enabled=true",
        "--set",
        "models.shards=2",
        "--set",
        "models.max_batch=16",
        // Measure the restart itself: the backoff that guards against restart storms would
        // otherwise be most of each measured restart in a test that panics every 80 ms.
        "--set",
        "models.restart_backoff_initial_us=0",
        "--set",
        "models.restart_backoff_max_ms=0",
    ]);
    let url = p.url();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));

    let mut clients = Vec::new();
    for w in 0..8u64 {
        let (url, stop, ok, failed) = (url.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut c = GrpcInferenceServiceClient::connect(url)
                .await
                .expect("connect");
            let mut i = w * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                match c.model_infer(obs_request("ppo_mlp", 1, &obs(i))).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        eprintln!("request failed: {status:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let sessions: Vec<_> = (0..4)
        .map(|s| tokio::spawn(run_session(url.clone(), format!("chaos-{s}"), 60)))
        .collect();

    let mut admin = AdminClient::connect(url.clone()).await.expect("admin");
    let mut injected = 0;
    for round in 0..40 {
        for model in ["ppo_mlp", "lstm_policy"] {
            let shard = format!("{model}/shard-{}", round % 2);
            let result = admin
                .panic_actor(PanicActorRequest {
                    name: shard,
                    in_forward: round % 4 < 2,
                })
                .await;
            match result {
                Ok(_) => injected += 1,
                // Still restarting from the previous round: skip it this time.
                Err(status) if status.code() == tonic::Code::Unavailable => {}
                Err(status) => panic!("inject panic: {status:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let chaos_sessions: Vec<Vec<Vec<u8>>> = futures_join(sessions).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }

    // A fault-free reference: the same observations on fresh sessions, after the chaos.
    for (s, chaos) in chaos_sessions.iter().enumerate() {
        let reference = run_session(url.clone(), format!("reference-{s}"), 60)
            .await
            .expect("reference session");
        assert_eq!(
            &reference, chaos,
            "session {s} diverged from the fault-free run"
        );
    }

    let tree = admin.tree(TreeRequest {}).await.expect("tree").into_inner();
    let metrics = p.scrape();
    let redispatched: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("fudo_redispatched{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    eprintln!(
        "shard panics injected: {injected}; restarts observed: {}; restart latency p50 {} µs, p99 {} µs, max {} µs; requests ok {ok}, failed {failed}; re-dispatched {redispatched}",
        tree.restart_count, tree.restart_p50_us, tree.restart_p99_us, tree.restart_max_us
    );
    assert_eq!(failed, 0, "clients saw errors while shards panicked");
    assert!(ok > 100, "too little load to mean anything: {ok}");
    assert!(
        tree.restart_count >= injected / 2 && injected >= 40,
        "expected most injected panics to restart a shard, saw {}",
        tree.restart_count
    );
    assert!(
        redispatched >= 1.0,
        "no in-flight request was re-dispatched"
    );
}

async fn futures_join<T: Send + 'static>(
    handles: Vec<tokio::task::JoinHandle<Result<T, tonic::Status>>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(
            h.await
                .expect("task")
                .expect("session saw an error during chaos"),
        );
    }
    out
}
