//! End-to-end tests of the load loops against a tiny in-process `GrpcInferenceService` that
//! answers `ModelInfer` with a fixed result.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use clap::Parser as _;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

use super::{BenchArgs, measure, request::ACTION_OUTPUT};
use crate::api::fake_inference::{FakeInfer, InferOnly};
use crate::api::proto::inference::{
    ModelInferRequest, ModelInferResponse, infer_parameter::ParameterChoice,
    model_infer_response::InferOutputTensor,
};

/// One observed sequence step: (seq, start, end).
type Step = (i64, bool, bool);

#[derive(Default)]
struct Fake {
    calls: AtomicU64,
    /// Answer `UNAVAILABLE` to every `fail_every`-th call (0: never).
    fail_every: u64,
    /// Delay before answering.
    delay: Duration,
    /// Steps seen per sequence id.
    sequences: Mutex<HashMap<i64, Vec<Step>>>,
}

fn int_param(req: &ModelInferRequest, key: &str) -> Option<i64> {
    match req.parameters.get(key)?.parameter_choice {
        Some(ParameterChoice::Int64Param(v)) => Some(v),
        _ => None,
    }
}

fn bool_param(req: &ModelInferRequest, key: &str) -> bool {
    matches!(
        req.parameters
            .get(key)
            .and_then(|p| p.parameter_choice.clone()),
        Some(ParameterChoice::BoolParam(true))
    )
}

fn output(name: &str, datatype: &str, shape: Vec<i64>) -> InferOutputTensor {
    InferOutputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl FakeInfer for Fake {
    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let req = request.into_inner();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let (Some(input), Some(raw)) = (req.inputs.first(), req.raw_input_contents.first()) else {
            return Err(Status::invalid_argument("no obs"));
        };
        let rows = input.shape.first().copied().unwrap_or(0);
        let cols = input.shape.get(1).copied().unwrap_or(0);
        if input.name != "obs"
            || input.datatype != "FP32"
            || i64::try_from(raw.len()).ok() != Some(rows * cols * 4)
        {
            return Err(Status::invalid_argument("bad obs"));
        }
        if let Some(id) = int_param(&req, "sequence_id") {
            let seq = int_param(&req, "sequence_seq").unwrap_or(0);
            let step = (
                seq,
                bool_param(&req, "sequence_start"),
                bool_param(&req, "sequence_end"),
            );
            self.sequences
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_default()
                .push(step);
        }
        if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
            return Err(Status::unavailable("fake outage"));
        }
        let b = usize::try_from(rows).unwrap_or(0);
        Ok(Response::new(ModelInferResponse {
            model_name: req.model_name,
            id: req.id,
            outputs: vec![
                output(ACTION_OUTPUT, "INT64", vec![rows]),
                output("logits", "FP32", vec![rows, 3]),
                output("value", "FP32", vec![rows, 1]),
            ],
            raw_output_contents: vec![vec![0; b * 8], vec![0; b * 12], vec![0; b * 4]],
            ..Default::default()
        }))
    }
}

async fn start(fake: Fake) -> (SocketAddr, Arc<Fake>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let fake = Arc::new(fake);
    let service = InferOnly::server(Arc::clone(&fake));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    (addr, fake)
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(addr: SocketAddr, extra: &[&str]) -> BenchArgs {
    let target = format!("http://{addr}");
    let base = ["bench", "--target", &target, "--quiet", "--warmup", "0"];
    Cli::try_parse_from(base.iter().chain(extra))
        .expect("args")
        .bench
}

fn json_has_fields(report: &super::BenchReport) {
    let v = serde_json::to_value(report).expect("json");
    for key in [
        "config",
        "duration_s",
        "requests",
        "throughput_rps",
        "inferences_per_s",
        "latency_ms",
        "errors_by_status",
        "timeline",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in ["sent", "ok", "failed"] {
        assert!(v["requests"].get(key).is_some(), "missing requests.{key}");
    }
    for key in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(v["latency_ms"][key].is_number(), "missing latency_ms.{key}");
    }
    for key in ["t", "sent", "ok", "failed", "p50_ms", "p99_ms"] {
        assert!(
            v["timeline"][0].get(key).is_some(),
            "missing timeline.{key}"
        );
    }
    assert!(v["config"]["target"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_loop_against_fake_server() {
    let (addr, fake) = start(Fake::default()).await;
    let a = args(
        addr,
        &["--duration", "1", "--concurrency", "4", "--batch", "8"],
    );
    let r = measure(&a).await.expect("bench");
    json_has_fields(&r);
    assert!(r.requests.ok > 10, "{:?}", r.requests);
    assert_eq!(r.requests.failed, 0, "{:?}", r.errors_by_status);
    assert_eq!(r.requests.sent, r.requests.ok);
    // No warmup: every request the server saw was measured.
    assert_eq!(fake.calls.load(Ordering::SeqCst), r.requests.sent);
    assert!(r.latency_ms.p50 > 0.0 && r.latency_ms.p50 <= r.latency_ms.p99);
    assert!(r.latency_ms.p99 <= r.latency_ms.max);
    assert!((r.inferences_per_s - 8.0 * r.throughput_rps).abs() < 1e-6);
    assert_eq!(r.timeline.len(), 1);
    assert_eq!(r.timeline[0].ok, r.requests.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_loop_sends_exactly_the_schedule() {
    let (addr, fake) = start(Fake::default()).await;
    let a = args(
        addr,
        &[
            "--mode",
            "open",
            "--rate",
            "400",
            "--duration",
            "1",
            "--connections",
            "3",
        ],
    );
    let r = measure(&a).await.expect("bench");
    json_has_fields(&r);
    assert_eq!(r.requests.sent, 400);
    assert_eq!(r.requests.ok, 400, "{:?}", r.errors_by_status);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 400);
    assert!((r.throughput_rps - 400.0).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warmup_is_sent_but_not_measured() {
    let (addr, fake) = start(Fake::default()).await;
    let target = format!("http://{addr}");
    let a = Cli::try_parse_from([
        "bench",
        "--target",
        &target,
        "--quiet",
        "--mode",
        "open",
        "--rate",
        "200",
        "--warmup",
        "0.5",
        "--duration",
        "0.5",
    ])
    .expect("args")
    .bench;
    let r = measure(&a).await.expect("bench");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 200);
    assert_eq!(r.requests.sent, 100);
    assert_eq!(r.requests.ok, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_are_counted_by_status() {
    let (addr, _fake) = start(Fake {
        fail_every: 4,
        ..Fake::default()
    })
    .await;
    let a = args(
        addr,
        &["--mode", "open", "--rate", "400", "--duration", "0.5"],
    );
    let r = measure(&a).await.expect("bench");
    assert_eq!(r.requests.sent, 200);
    assert_eq!(r.requests.failed, 50);
    assert_eq!(r.requests.ok, 150);
    assert_eq!(r.errors_by_status.get("UNAVAILABLE"), Some(&50));
    assert_eq!(r.timeline[0].failed, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_loop_overload_and_deadlines() {
    // The server takes 300 ms; the deadline is 100 ms; at most 10 in flight.
    let (addr, _fake) = start(Fake {
        delay: Duration::from_millis(300),
        ..Fake::default()
    })
    .await;
    let a = args(
        addr,
        &[
            "--mode",
            "open",
            "--rate",
            "200",
            "--duration",
            "0.5",
            "--timeout-ms",
            "100",
            "--max-outstanding",
            "10",
        ],
    );
    let started = std::time::Instant::now();
    let r = measure(&a).await.expect("bench");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "run must stop by itself"
    );
    assert_eq!(r.requests.sent, 100);
    assert_eq!(r.requests.ok, 0);
    assert_eq!(r.requests.failed, 100);
    let overload = r
        .errors_by_status
        .get("client_overload")
        .copied()
        .unwrap_or(0);
    let deadline = r
        .errors_by_status
        .get("DEADLINE_EXCEEDED")
        .copied()
        .unwrap_or(0);
    assert!(overload > 0, "{:?}", r.errors_by_status);
    // tonic servers enforce `grpc-timeout` themselves and answer CANCELLED; whichever side
    // gives up first, every sent request failed on its deadline.
    let cancelled = r.errors_by_status.get("CANCELLED").copied().unwrap_or(0);
    assert!(deadline + cancelled > 0, "{:?}", r.errors_by_status);
    assert_eq!(
        overload + deadline + cancelled,
        100,
        "{:?}",
        r.errors_by_status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_server_is_unavailable_not_a_crash() {
    // Bind then drop: nothing listens there any more.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let a = args(addr, &["--duration", "0.3", "--concurrency", "2"]);
    let r = measure(&a).await.expect("bench");
    assert_eq!(r.requests.ok, 0);
    assert!(r.requests.failed > 0);
    assert_eq!(
        r.errors_by_status
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["UNAVAILABLE"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recurrent_sessions_step_sequentially() {
    let (addr, fake) = start(Fake {
        fail_every: 7,
        ..Fake::default()
    })
    .await;
    let a = args(
        addr,
        &[
            "--model",
            "lstm_policy",
            "--sessions",
            "3",
            "--duration",
            "0.5",
        ],
    );
    let r = measure(&a).await.expect("bench");
    assert!(r.requests.ok > 3, "{:?}", r.requests);
    assert!(r.requests.failed > 0);
    let sequences = fake
        .sequences
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(sequences.len(), 3);
    for (id, steps) in &sequences {
        assert_ne!(*id, 0);
        // The first step starts the sequence, the last one ends it.
        assert_eq!(steps[0], (1, true, false), "{id}: {steps:?}");
        let last = steps[steps.len() - 1];
        assert!(last.2 && !last.1, "{id}: {steps:?}");
        // Every step is its predecessor's successor (after a success), a retry of it (after a
        // failure), or a restart at 1 (after 3 failures in a row).
        for w in steps.windows(2) {
            let (prev, next) = (w[0].0, w[1].0);
            assert!(
                next == prev || next == prev + 1 || next == 1,
                "{id}: {steps:?}"
            );
            assert_eq!(w[1].1, w[1].0 == 1, "start flag only on step 1: {steps:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_retries_a_dead_target_costs_no_request() {
    let (addr, _fake) = start(Fake::default()).await;
    // A port nobody listens on: every attempt there is refused (UNAVAILABLE).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let targets = format!("http://{dead},http://{addr}");
    let base = ["bench", "--target", &targets, "--quiet", "--warmup", "0"];
    let extra = [
        "--duration",
        "1",
        "--concurrency",
        "4",
        "--connections",
        "1",
    ];
    let parse = |more: &[&str]| {
        Cli::try_parse_from(base.iter().chain(extra.iter()).chain(more))
            .expect("args")
            .bench
    };
    let raw = measure(&parse(&[])).await.expect("bench");
    assert!(raw.errors_by_status.contains_key("UNAVAILABLE"), "{raw:?}");
    let retried = measure(&parse(&["--retries", "1"])).await.expect("bench");
    assert!(retried.requests.ok > 10, "{:?}", retried.requests);
    assert_eq!(retried.requests.failed, 0, "{:?}", retried.errors_by_status);
}
