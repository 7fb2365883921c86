//! Restart latency: a child panics (or fails) → its replacement is spawned and published.
//!
//! Measured end to end from the test's point of view: from sending the fatal message to
//! receiving the directory's `Started` event of the new generation. Run with `--nocapture` to
//! see the numbers; the assertion bound is loose so that slow CI machines pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fudo::supervision::testkit::{Probe, ProbeMsg, silence_probe_panics};
use fudo::supervision::{
    Backoff, DirectoryEvent, Intensity, RestartType, Strategy, Supervisor, SupervisorSpec,
};

const ROUNDS: u64 = 400;

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn measure(fatal: fn() -> ProbeMsg, label: &str) -> (Duration, Duration) {
    let spec = SupervisorSpec::new(unique("lat"), Strategy::OneForOne)
        .with_backoff(Backoff::NONE)
        .with_intensity(Intensity {
            max_restarts: u32::MAX,
            period: Duration::from_secs(1),
        })
        .with_child(Probe::default().spec("w", RestartType::Permanent));
    let dir = spec.directory.clone();
    let name = format!("{}/w", spec.name);
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(spec, None).await.expect("start");

    let mut samples = Vec::with_capacity(ROUNDS as usize);
    for generation in 2..ROUNDS + 2 {
        let child = dir
            .lookup(&name)
            .expect("published")
            .actor_ref::<ProbeMsg>();
        let t0 = Instant::now();
        child.send_message(fatal()).expect("alive");
        loop {
            match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                Ok(Ok(DirectoryEvent::Started { generation: g, .. })) if g == generation => break,
                Ok(Ok(_)) => {}
                other => panic!("no restart: {other:?}"),
            }
        }
        samples.push(t0.elapsed());
    }
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{label}: {ROUNDS} restarts, median {:?}, p99 {:?}, max {:?}",
        p50,
        p99,
        samples[samples.len() - 1]
    );
    sup.stop(None);
    handle.await.expect("join");
    (p50, p99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_latency_stays_far_below_a_millisecond() {
    silence_probe_panics();
    let (panic_p50, panic_p99) = measure(|| ProbeMsg::Panic, "panic → replacement").await;
    let (fail_p50, fail_p99) = measure(|| ProbeMsg::Fail, "error → replacement").await;
    // Typical figures are tens of microseconds; the bounds leave room for loaded CI machines.
    assert!(panic_p50 < Duration::from_millis(2), "median {panic_p50:?}");
    assert!(panic_p99 < Duration::from_millis(20), "p99 {panic_p99:?}");
    assert!(fail_p50 < Duration::from_millis(2), "median {fail_p50:?}");
    assert!(fail_p99 < Duration::from_millis(20), "p99 {fail_p99:?}");
}
