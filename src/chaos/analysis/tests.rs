use super::*;
use crate::chaos::history::OpKind;

const SCENARIO: &str = r#"
name = "t"
summary = "s"
why = "w"
[load]
rate = 100
duration_s = 10
[[fault]]
kind = "node-kill"
at_s = 5
window_s = 2
node = "tokyo-a-1"
[[hypothesis]]
kind = "max-failed"
max = 0
[[hypothesis]]
kind = "recovery-s"
max = 1.0
[[hypothesis]]
kind = "throughput-ratio"
min = 0.95
[[hypothesis]]
kind = "p99-ms"
phase = "during"
max = 50
"#;

/// 100 requests per second for 10 s, 1 ms each; failures and slow requests where asked.
fn ops(failed: impl Fn(i64) -> bool, slow: impl Fn(i64) -> bool) -> Vec<Op> {
    (0..1000)
        .map(|i| {
            let start = i * 10_000;
            let lat = if slow(start) { 80_000 } else { 1_000 };
            Op {
                id: i as u64,
                process: "stateless".into(),
                kind: OpKind::Infer,
                seq: None,
                start_us: start,
                end_us: start + lat,
                ok: !failed(start),
                status: if failed(start) {
                    "UNAVAILABLE".into()
                } else {
                    "OK".into()
                },
                error: None,
                served_by: None,
                action: Some(0),
                replayed: false,
                owner_epoch: None,
            }
        })
        .collect()
}

fn scenario() -> Scenario {
    Scenario::parse("t.toml", SCENARIO, false).expect("parses")
}

#[test]
fn a_clean_run_passes_every_hypothesis() {
    let s = scenario();
    let a = analyse(&s, &ops(|_| false, |_| false), &[true]);
    assert_eq!(a.requests.sent, 1000);
    assert_eq!(a.timeline.len(), 10);
    assert_eq!(a.timeline[3].sent, 100);
    let phases: Vec<&str> = a.latency.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(phases, ["before", "during", "after"]);
    assert!((a.faults[0].throughput_ratio - 1.0).abs() < 1e-9);
    assert_eq!(a.faults[0].recovery_s, 0.0);
    let results = check(&s, &a, &SessionsReport::default(), &[]);
    assert!(results.iter().all(|h| h.held), "{results:#?}");
}

#[test]
fn failures_after_the_fault_set_recovery_and_fail_the_run() {
    let s = scenario();
    // Failures from 5.0 s to 5.25 s, then slow requests until 5.6 s.
    let a = analyse(
        &s,
        &ops(
            |t| (5_000_000..5_250_000).contains(&t),
            |t| (5_250_000..5_600_000).contains(&t),
        ),
        &[true],
    );
    assert_eq!(a.requests.failed, 25);
    assert!(
        (a.faults[0].recovery_s - 0.6).abs() < 1e-9,
        "{}",
        a.faults[0].recovery_s
    );
    assert!(a.faults[0].throughput_ratio < 0.9);
    let results = check(&s, &a, &SessionsReport::default(), &[]);
    let held: Vec<bool> = results.iter().map(|h| h.held).collect();
    // max-failed, recovery (0.6 <= 1.0 holds), throughput (0.875 fails), p99 during (80 ms fails)
    assert_eq!(held, [false, true, false, false], "{results:#?}");
}

#[test]
fn a_fault_that_was_not_injected_fails_the_run() {
    let s = scenario();
    let a = analyse(&s, &ops(|_| false, |_| false), &[false]);
    let results = check(&s, &a, &SessionsReport::default(), &[]);
    assert!(
        results
            .iter()
            .any(|h| !h.held && h.name.contains("injected"))
    );
}

#[test]
fn warm_up_requests_are_not_measured() {
    let mut o = ops(|_| false, |_| false);
    o[0].start_us = -5;
    o[0].ok = false;
    assert_eq!(requests(&o).sent, 999);
    assert_eq!(requests(&o).failed, 0);
}

#[test]
fn percentiles_are_exact_on_small_sets() {
    let l = latency((1..=1000).map(f64::from).collect());
    assert_eq!((l.p50, l.p99, l.p999, l.max), (500.0, 990.0, 999.0, 1000.0));
    assert_eq!(latency(Vec::new()), Latency::default());
}
