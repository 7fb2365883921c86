//! Property test: random sequences of step requests (retries, gaps, duplicates, starts, ends,
//! infer failures, version and shape mistakes, evictions and table restarts) against a plain
//! reference model of the session rules. Checks that every seq is stepped exactly once, that
//! replays return the recorded output, and that refusals are the right variants.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fudo::sessions::{
    SessionConfig, SessionError, SessionStore, SessionTable, StepComputed, StepError, StepOutput,
    StepRequest,
};
use proptest::prelude::*;

const RETAINED: usize = 3;
const SESSIONS: [&str; 3] = ["alpha", "beta", "gamma"];

/// The policy: deterministic in (previous state, observation).
fn policy(prev: &[f32], obs: u64) -> StepComputed {
    let mut next = prev.to_vec();
    next[0] = prev[0] + 1.0;
    next[1] = (prev[1] * 7.0 + obs as f32) % 100_003.0;
    for x in next.iter_mut().skip(2) {
        *x += 0.5;
    }
    StepComputed {
        output: StepOutput {
            logits: prev.to_vec(),
            value: prev[1],
            action: prev[0] as i64,
        },
        next_state: next,
        moved_to: None,
        observed: Vec::new(),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Step {
        session: usize,
        /// `None`: no seq. `Some(d)`: last + d (clamped at 0).
        delta: Option<i64>,
        start: bool,
        end: bool,
        version: &'static str,
        dim: usize,
        fail: bool,
    },
    /// Evict every session from memory (idle TTL is zero).
    Evict,
    /// Replace the table with a fresh one on the same store (process restart).
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let step = (
        0..SESSIONS.len(),
        prop_oneof![3 => Just(None), 7 => (-5i64..=3).prop_map(Some)],
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        prop_oneof![19 => Just("v1"), 1 => Just("v2")],
        prop_oneof![19 => Just(2usize), 1 => Just(3usize)],
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(session, delta, start, end, version, dim, fail)| Op::Step {
                session,
                delta,
                start,
                end,
                version,
                dim,
                fail,
            },
        );
    prop_oneof![30 => step, 1 => Just(Op::Evict), 1 => Just(Op::Restart)]
}

#[derive(Clone, Debug)]
struct RefSession {
    version: String,
    last: u64,
    ended: bool,
    state: Vec<f32>,
    /// Outputs of the current episode by seq.
    results: BTreeMap<u64, StepOutput>,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Replay(u64, StepOutput),
    Step { seq: u64, fresh: bool },
    NotStarted,
    Ended,
    Stale,
    Gap,
    Version,
    Shape,
}

fn expect(s: Option<&RefSession>, req: &StepRequest) -> Expect {
    let Some(s) = s else {
        return if req.start {
            Expect::Step {
                seq: req.seq.unwrap_or(1),
                fresh: true,
            }
        } else {
            Expect::NotStarted
        };
    };
    let seq = req.seq.unwrap_or(s.last + 1);
    let same_version = s.version == req.model_version;
    if seq <= s.last {
        if !same_version {
            return Expect::Version;
        }
        let retained = seq + RETAINED as u64 > s.last;
        return match s.results.get(&seq) {
            Some(out) if retained => Expect::Replay(seq, out.clone()),
            _ => Expect::Stale,
        };
    }
    if req.start {
        Expect::Step { seq, fresh: true }
    } else if s.ended {
        Expect::Ended
    } else if !same_version {
        Expect::Version
    } else if seq != s.last + 1 {
        Expect::Gap
    } else if s.state.len() != req.state_dim {
        Expect::Shape
    } else {
        Expect::Step { seq, fresh: false }
    }
}

fn table(store: &SessionStore) -> SessionTable {
    SessionTable::new(
        store.clone(),
        SessionConfig {
            retained_results: RETAINED,
            idle_ttl: Duration::ZERO,
            ..SessionConfig::default()
        },
    )
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store = SessionStore::memory();
    let mut t = table(&store);
    let mut model: HashMap<usize, RefSession> = HashMap::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut expected_calls = 0usize;

    for (i, op) in ops.into_iter().enumerate() {
        let (session, delta, start, end, version, dim, fail) = match op {
            Op::Evict => {
                t.evict_idle();
                prop_assert_eq!(t.len(), 0);
                continue;
            }
            Op::Restart => {
                t = table(&store);
                continue;
            }
            Op::Step {
                session,
                delta,
                start,
                end,
                version,
                dim,
                fail,
            } => (session, delta, start, end, version, dim, fail),
        };
        let last = model.get(&session).map_or(0, |s| s.last);
        let req = StepRequest {
            model: "lstm".into(),
            model_version: version.into(),
            new_version: String::new(),
            session_id: SESSIONS[session].into(),
            seq: delta.map(|d| last.saturating_add_signed(d)),
            start,
            end,
            state_dim: dim,
            min_epoch: 0,
        };
        let want = expect(model.get(&session), &req);
        let obs = i as u64;
        let counter = calls.clone();
        let got = t
            .step(req.clone(), move |prev| async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if fail {
                    Err("injected infer failure".to_string())
                } else {
                    Ok(policy(&prev, obs))
                }
            })
            .await;
        if matches!(want, Expect::Step { .. }) {
            expected_calls += 1;
        }
        prop_assert_eq!(
            calls.load(Ordering::SeqCst),
            expected_calls,
            "infer calls, op {}",
            i
        );

        match (want, got) {
            (Expect::Replay(seq, out), Ok(o)) => {
                prop_assert!(o.replayed);
                prop_assert_eq!(o.seq, seq);
                prop_assert_eq!(o.output, out);
            }
            (Expect::Step { .. }, Err(StepError::Infer(_))) if fail => {}
            (Expect::Step { seq, fresh }, Ok(o)) => {
                prop_assert!(!fail);
                prop_assert!(!o.replayed);
                prop_assert_eq!(o.seq, seq);
                prop_assert_eq!(o.durable_watermark, seq);
                let prev = match model.get(&session) {
                    Some(s) if !fresh => s.state.clone(),
                    _ => vec![0.0; dim],
                };
                let computed = policy(&prev, obs);
                prop_assert_eq!(&o.output, &computed.output);
                let s = model.entry(session).or_insert_with(|| RefSession {
                    version: version.into(),
                    last: 0,
                    ended: false,
                    state: vec![],
                    results: BTreeMap::new(),
                });
                if fresh {
                    s.version = version.into();
                    s.results.clear();
                }
                s.last = seq;
                s.ended = end;
                s.state = computed.next_state;
                s.results.insert(seq, computed.output);
            }
            (want, Err(StepError::Session(e))) => {
                let ok = matches!(
                    (&want, &e),
                    (Expect::NotStarted, SessionError::NotStarted { .. })
                        | (Expect::Ended, SessionError::Ended { .. })
                        | (Expect::Stale, SessionError::SeqStale { .. })
                        | (Expect::Gap, SessionError::SeqGap { .. })
                        | (Expect::Version, SessionError::VersionMismatch { .. })
                        | (Expect::Shape, SessionError::StateShape { .. })
                );
                prop_assert!(
                    ok,
                    "op {}: expected {:?}, got {:?} for {:?}",
                    i,
                    want,
                    e,
                    req
                );
            }
            (want, got) => {
                prop_assert!(
                    false,
                    "op {}: expected {:?}, got {:?} for {:?}",
                    i,
                    want,
                    got,
                    req
                );
            }
        }
    }

    // The table (and the store behind it) agree with the model.
    for (session, s) in &model {
        let snap = store
            .load(SESSIONS[*session])
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .expect("stepped session is in the store");
        prop_assert_eq!(snap.seq, s.last);
        prop_assert_eq!(snap.ended, s.ended);
        prop_assert_eq!(&snap.state, &s.state);
        prop_assert!(snap.results.len() <= RETAINED);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_reference_model(ops in prop::collection::vec(op(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
