//! Tests of the gateway client against in-process fake fudo nodes on 127.0.0.1.
//!
//! Each fake answers `ModelInfer` with a response whose `id` is the fake's name, after an
//! optional delay, or with a configured error; it also serves grpc.health.v1.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tonic::{Code, Request, Response, Status, transport::server::TcpIncoming};

use super::{ClientConfig, ClientError, Endpoint, FudoClient, HEALTH_SERVICE, HedgeConfig};
use crate::api::fake_inference::{FakeInfer, InferOnly};
use crate::api::proto::inference::{ModelInferRequest, ModelInferResponse};

/// What a fake answers to `ModelInfer`.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    Fail(Code),
}

struct Fake {
    name: String,
    delay: Duration,
    mode: Mutex<Mode>,
    calls: AtomicU64,
}

impl Fake {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
    }
}

#[tonic::async_trait]
impl FakeInfer for Fake {
    async fn model_infer(
        &self,
        _: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mode = *self.mode.lock().unwrap_or_else(PoisonError::into_inner);
        match mode {
            Mode::Ok => Ok(Response::new(ModelInferResponse {
                id: self.name.clone(),
                ..Default::default()
            })),
            Mode::Fail(code) => Err(Status::new(code, format!("{} fails", self.name))),
        }
    }
}

/// Starts a fake named `name` on `addr` (port 0 for any).
async fn start_on(
    addr: SocketAddr,
    name: &str,
    delay: Duration,
    mode: Mode,
) -> (SocketAddr, Arc<Fake>) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let fake = Arc::new(Fake {
        name: name.to_owned(),
        delay,
        mode: Mutex::new(mode),
        calls: AtomicU64::new(0),
    });
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(HEALTH_SERVICE, tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(InferOnly::server(Arc::clone(&fake)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    (addr, fake)
}

async fn start(name: &str, delay: Duration, mode: Mode) -> (SocketAddr, Arc<Fake>) {
    start_on(([127, 0, 0, 1], 0).into(), name, delay, mode).await
}

/// An address nobody listens on (bound, then released).
async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

fn endpoint(addr: SocketAddr, region: &str) -> Endpoint {
    Endpoint {
        url: format!("http://{addr}"),
        region: region.to_owned(),
        az: format!("{region}a"),
    }
}

fn config(endpoints: Vec<Endpoint>) -> ClientConfig {
    let mut c = ClientConfig::new(endpoints);
    c.deadline = Duration::from_millis(500);
    c.probe_interval = Duration::from_millis(50);
    c
}

fn req() -> ModelInferRequest {
    ModelInferRequest {
        model_name: "policy".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn retries_unavailable_on_another_endpoint_and_returns_invalid_argument_as_is() {
    let (a, fa) = start("a", Duration::ZERO, Mode::Fail(Code::Unavailable)).await;
    let (b, fb) = start("b", Duration::ZERO, Mode::Ok).await;
    let mut cfg = config(vec![endpoint(a, "r1"), endpoint(b, "r2")]);
    cfg.preferred_region = Some("r1".into());
    cfg.eject_after = 100; // keep `a` preferred throughout
    let client = FudoClient::connect(cfg).await.expect("connect");

    let resp = client.infer(req()).await.expect("retried to b");
    assert_eq!(resp.id, "b");
    assert_eq!((fa.calls(), fb.calls()), (1, 1));
    assert_eq!(client.endpoints()[0].consecutive_failures, 1);

    // Both unavailable: attempts alternate between the two and run out.
    fb.set_mode(Mode::Fail(Code::Unavailable));
    match client.infer(req()).await {
        Err(ClientError::Exhausted { attempts: 3, last }) => {
            assert_eq!(last.code(), Code::Unavailable);
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert_eq!(fa.calls() + fb.calls(), 5);

    // Non-retryable: returned at once, no second attempt.
    fa.set_mode(Mode::Fail(Code::InvalidArgument));
    fb.set_mode(Mode::Ok);
    let (a_before, b_before) = (fa.calls(), fb.calls());
    match client.infer(req()).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), Code::InvalidArgument),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(fa.calls() - a_before, 1);
    assert_eq!(fb.calls(), b_before);
}

#[tokio::test]
async fn dead_endpoint_is_ejected_then_readmitted_by_the_prober() {
    let dead = dead_addr().await;
    let (live, flive) = start("live", Duration::ZERO, Mode::Ok).await;
    let mut cfg = config(vec![endpoint(dead, "r1"), endpoint(live, "r2")]);
    cfg.preferred_region = Some("r1".into());
    cfg.eject_after = 2;
    let client = FudoClient::connect(cfg).await.expect("connect");

    for _ in 0..2 {
        let resp = client.infer(req()).await.expect("fails over to live");
        assert_eq!(resp.id, "live");
    }
    let status = client.endpoints();
    assert!(status[0].ejected, "{status:?}");
    assert_eq!(status[0].consecutive_failures, 2);
    assert!(!status[1].ejected);

    // Ejected: the preferred but dead endpoint is skipped, every call goes straight to live.
    let before = client.stats().attempts;
    for _ in 0..10 {
        assert_eq!(client.infer(req()).await.expect("live").id, "live");
    }
    assert_eq!(client.stats().attempts - before, 10);
    assert_eq!(flive.calls(), 12);

    // The node comes back on the same port: the prober re-admits it.
    let (_, fdead) = start_on(dead, "revived", Duration::ZERO, Mode::Ok).await;
    let t0 = Instant::now();
    while client.endpoints()[0].ejected {
        assert!(t0.elapsed() < Duration::from_secs(1), "not re-admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(client.infer(req()).await.expect("revived").id, "revived");
    assert_eq!(fdead.calls(), 1);
}

#[tokio::test]
async fn all_ejected_fails_open() {
    let (a, fa) = start("a", Duration::ZERO, Mode::Fail(Code::Unavailable)).await;
    let mut cfg = config(vec![endpoint(a, "r1")]);
    cfg.eject_after = 1;
    cfg.probe_interval = Duration::from_secs(3600);
    let client = FudoClient::connect(cfg).await.expect("connect");
    assert!(client.infer(req()).await.is_err());
    assert!(client.endpoints()[0].ejected);
    fa.set_mode(Mode::Ok);
    assert_eq!(client.infer(req()).await.expect("fail open").id, "a");
    assert!(!client.endpoints()[0].ejected, "success re-admits");
}

#[tokio::test]
async fn sessions_stick_to_one_endpoint_and_move_on_failure() {
    let (a, fa) = start("a", Duration::ZERO, Mode::Ok).await;
    let (b, fb) = start("b", Duration::ZERO, Mode::Ok).await;
    let client = FudoClient::connect(config(vec![endpoint(a, "r1"), endpoint(b, "r1")]))
        .await
        .expect("connect");

    let first = client.infer_session("s1", req()).await.expect("step").id;
    for _ in 0..9 {
        assert_eq!(
            client.infer_session("s1", req()).await.expect("step").id,
            first
        );
    }
    let (sticky, other, other_name) = if first == "a" {
        (&fa, &fb, "b")
    } else {
        (&fb, &fa, "a")
    };
    assert_eq!((sticky.calls(), other.calls()), (10, 0));

    sticky.set_mode(Mode::Fail(Code::Unavailable));
    assert_eq!(
        client.infer_session("s1", req()).await.expect("moved").id,
        other_name
    );
    // The old node recovers (and is not ejected), but the session stays where it moved.
    sticky.set_mode(Mode::Ok);
    for _ in 0..5 {
        assert_eq!(
            client.infer_session("s1", req()).await.expect("step").id,
            other_name
        );
    }
    assert_eq!((sticky.calls(), other.calls()), (11, 6));
    assert!(client.endpoints().iter().all(|e| !e.ejected));
    client.end_session("s1");
}

#[tokio::test]
async fn slow_server_yields_deadline_exceeded_on_time() {
    let (a, _fa) = start("slow", Duration::from_millis(1000), Mode::Ok).await;
    let mut cfg = config(vec![endpoint(a, "r1")]);
    cfg.deadline = Duration::from_millis(100);
    let client = FudoClient::connect(cfg).await.expect("connect");
    let t0 = Instant::now();
    let err = client.infer(req()).await.expect_err("too slow");
    let took = t0.elapsed();
    assert!(
        matches!(err, ClientError::DeadlineExceeded { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(took >= Duration::from_millis(95), "{took:?}");
    assert!(took < Duration::from_millis(180), "{took:?}");
}

#[tokio::test]
async fn hedges_slow_calls_within_budget() {
    let (slow, fslow) = start("slow", Duration::from_millis(200), Mode::Ok).await;
    let (fast, ffast) = start("fast", Duration::ZERO, Mode::Ok).await;
    let mut cfg = config(vec![endpoint(slow, "r1"), endpoint(fast, "r2")]);
    cfg.preferred_region = Some("r1".into()); // every first attempt goes to the slow node
    cfg.deadline = Duration::from_secs(1);
    cfg.hedge = Some(HedgeConfig {
        percentile: 0.95,
        min_delay: Duration::from_millis(20),
        budget_ratio: 0.5,
    });
    let client = FudoClient::connect(cfg).await.expect("connect");

    let mut fast_calls = 0;
    for _ in 0..6 {
        let t0 = Instant::now();
        let resp = client.infer(req()).await.expect("infer");
        let took = t0.elapsed();
        if resp.id == "fast" {
            fast_calls += 1;
            assert!(
                took < Duration::from_millis(150),
                "hedged call took {took:?}"
            );
        } else {
            assert!(took >= Duration::from_millis(190), "{took:?}");
        }
    }
    // budget 0.5: calls 2, 4 and 6 may hedge (hedged + 1 <= 0.5 * calls), 1, 3 and 5 may not.
    let stats = client.stats();
    assert_eq!(stats.hedges, 3);
    assert_eq!(fast_calls, 3);
    assert_eq!(ffast.calls(), 3);
    assert_eq!(fslow.calls(), 6);
}

#[tokio::test]
async fn hedging_does_not_hide_a_stalled_node_from_ejection() {
    let (stalled, stalled_fake) = start("stalled", Duration::from_millis(2000), Mode::Ok).await;
    let (fast, _ff) = start("fast", Duration::ZERO, Mode::Ok).await;
    let mut cfg = config(vec![endpoint(stalled, "r1"), endpoint(fast, "r2")]);
    cfg.preferred_region = Some("r1".into()); // every first attempt goes to the stalled node
    cfg.attempt_timeout = Some(Duration::from_millis(40));
    cfg.eject_after = 3;
    cfg.probe_interval = Duration::from_secs(60); // it answers health checks: no re-admission
    cfg.hedge = Some(HedgeConfig {
        percentile: 0.95,
        min_delay: Duration::from_millis(5),
        budget_ratio: 1.0,
    });
    let client = FudoClient::connect(cfg).await.expect("connect");

    // Each call is rescued by its hedge long before the stalled attempt's timeout...
    for _ in 0..3 {
        let t0 = Instant::now();
        let resp = client.infer(req()).await.expect("infer");
        assert_eq!(resp.id, "fast");
        assert!(
            t0.elapsed() < Duration::from_millis(35),
            "{:?}",
            t0.elapsed()
        );
    }
    // ...but the stalled attempts run on to their timeout and count against their node.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let node = &client.endpoints()[0];
    assert!(node.ejected, "{node:?}");
    assert_eq!(node.outstanding, 0, "{node:?}");
    // Ejected, it gets no more first attempts: no more hedges either.
    for _ in 0..5 {
        assert_eq!(client.infer(req()).await.expect("infer").id, "fast");
    }
    assert_eq!(stalled_fake.calls(), 3);
    assert_eq!(client.stats().hedges, 3);
}

#[tokio::test]
async fn session_steps_do_not_set_the_hedge_delay() {
    let (slow, _fs) = start("slow", Duration::from_millis(30), Mode::Ok).await;
    let mut cfg = config(vec![endpoint(slow, "r1")]);
    cfg.hedge = Some(HedgeConfig {
        percentile: 0.5,
        min_delay: Duration::from_millis(2),
        budget_ratio: 0.1,
    });
    let client = FudoClient::connect(cfg).await.expect("connect");
    // 200 slow session steps (more than the 100 samples the delay needs), all at once.
    let steps = (0..200).map(|i| {
        let client = client.clone();
        async move { client.infer_session(&format!("s{i}"), req()).await }
    });
    for r in futures::future::join_all(steps).await {
        r.expect("step");
    }
    let hedge = client.inner.hedge.as_ref().expect("hedging on");
    assert_eq!(hedge.delay(), Duration::from_millis(2));
    // Stateless calls do set it.
    for r in futures::future::join_all((0..200).map(|_| client.infer(req()))).await {
        r.expect("infer");
    }
    assert!(
        hedge.delay() >= Duration::from_millis(25),
        "{:?}",
        hedge.delay()
    );
}

#[tokio::test]
async fn prober_stops_when_the_last_client_is_dropped() {
    let (a, _fa) = start("a", Duration::ZERO, Mode::Ok).await;
    let client = FudoClient::connect(config(vec![endpoint(a, "r1")]))
        .await
        .expect("connect");
    let clone = client.clone();
    let weak = Arc::downgrade(&client.inner);
    tokio::time::sleep(Duration::from_millis(120)).await; // let the prober tick
    drop(client);
    assert!(weak.upgrade().is_some());
    drop(clone);
    assert!(
        weak.upgrade().is_none(),
        "the prober must not keep the client alive"
    );
}

#[tokio::test]
async fn invalid_config_is_rejected() {
    let err = FudoClient::connect(ClientConfig::new(Vec::new()))
        .await
        .expect_err("empty");
    assert!(matches!(err, ClientError::Config(_)), "{err:?}");
    let mut cfg = ClientConfig::new(vec![endpoint(([127, 0, 0, 1], 1).into(), "r")]);
    cfg.endpoints[0].url = "not a url".into();
    let err = FudoClient::connect(cfg).await.expect_err("bad url");
    assert!(matches!(err, ClientError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn an_attempt_timeout_moves_a_call_off_a_stalled_node_within_the_deadline() {
    let (slow, stalled_fake) = start("stalled", Duration::from_millis(2000), Mode::Ok).await;
    let (fast, _ff) = start("fast", Duration::ZERO, Mode::Ok).await;
    let mut cfg = config(vec![endpoint(slow, "r1"), endpoint(fast, "r1")]);
    cfg.attempt_timeout = Some(Duration::from_millis(40));
    cfg.eject_after = 1;
    // The stalled node answers health checks at once, so the prober (50 ms in `config`) would
    // re-admit it in the middle of the loop (seen once in a full test run: not ejected at the
    // end). Re-admission has its own test; here it must not happen.
    cfg.probe_interval = Duration::from_secs(60);
    let client = FudoClient::connect(cfg).await.expect("connect");
    // Idle endpoints of one region tie, and ties are broken at random: 32 calls leave the
    // stalled node untried 1 run in 4 billion (6 calls: 1 in 64).
    for _ in 0..32 {
        let t0 = Instant::now();
        client.infer(req()).await.expect("served by the fast node");
        assert!(
            t0.elapsed() < Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
    }
    // After its first timed-out attempt the stalled node is ejected and gets no more calls.
    let stalled = &client.endpoints()[0];
    assert!(stalled.ejected, "{stalled:?}");
    assert_eq!(stalled_fake.calls(), 1, "{stalled:?}");
}

#[test]
fn transport_failures_are_retryable_and_request_failures_are_not() {
    use crate::client::is_retryable;
    assert!(is_retryable(&Status::unavailable("draining")));
    assert!(is_retryable(&Status::resource_exhausted("queue full")));
    assert!(is_retryable(&Status::unknown("transport error")));
    // A CANCELLED without a transport error behind it is the caller's own cancellation.
    assert!(!is_retryable(&Status::cancelled("operation was canceled")));
    assert!(!is_retryable(&Status::invalid_argument("bad shape")));
    assert!(!is_retryable(&Status::failed_precondition("gap")));
    assert!(!is_retryable(&Status::internal("poison")));
}
