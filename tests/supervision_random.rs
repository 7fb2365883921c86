//! Drives real supervisors through random exit sequences and checks that what they do (the
//! exact sequence of directory events, the final tree) is what the pure planner predicts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fudo::supervision::testkit::{Lifecycle, Probe, ProbeMsg, silence_probe_panics};
use fudo::supervision::{
    Backoff, ChildState, ChildStatus, ChildView, DirectoryEvent, ExitEvent, ExitKind, Intensity,
    IntensityTracker, Plan, Planner, RestartType, Strategy, Supervisor, SupervisorMsg,
    SupervisorSpec,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ractor::rpc::CallResult;
use tokio::sync::broadcast::Receiver;

const WAIT: Duration = Duration::from_secs(2);

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The test's model of one child.
#[derive(Clone, Debug)]
struct Model {
    name: String,
    restart: RestartType,
    state: ChildState,
    generation: u64,
    last_abnormal: bool,
}

/// The directory events expected, with exit reasons left out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Started(String, u64),
    Exited(String, u64, bool),
}

async fn next(rx: &mut Receiver<DirectoryEvent>) -> Seen {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Ok(DirectoryEvent::Started { name, generation })) => Seen::Started(name, generation),
        Ok(Ok(DirectoryEvent::Exited {
            name,
            generation,
            abnormal,
            ..
        })) => Seen::Exited(name, generation, abnormal),
        other => panic!("no directory event: {other:?}"),
    }
}

async fn run_case(
    strategy: Strategy,
    types: Vec<RestartType>,
    max_restarts: u32,
    events: Vec<(usize, bool)>,
) -> Result<(), TestCaseError> {
    let intensity = Intensity {
        max_restarts,
        // Long enough that every restart of a case falls in one window: no timing dependence.
        period: Duration::from_secs(60),
    };
    let log = Lifecycle::new();
    let mut spec = SupervisorSpec::new(unique("rnd"), strategy)
        .with_backoff(Backoff::NONE)
        .with_intensity(intensity);
    for (i, &restart) in types.iter().enumerate() {
        spec = spec.with_child(Probe::new(log.clone()).spec(format!("c{i}"), restart));
    }
    let dir = spec.directory.clone();
    let mut model: Vec<Model> = types
        .iter()
        .enumerate()
        .map(|(i, &restart)| Model {
            name: format!("{}/c{i}", spec.name),
            restart,
            state: ChildState::Running,
            generation: 1,
            last_abnormal: false,
        })
        .collect();
    let planner = Planner {
        strategy,
        intensity,
    };
    let mut tracker = IntensityTracker::new();
    let (sup, handle) = Supervisor::start(spec, None)
        .await
        .map_err(|e| TestCaseError::fail(format!("start: {e}")))?;
    // Subscribed after the initial starts: only reactions to the injected exits are seen.
    let mut rx = dir.subscribe();

    for (sel, abnormal) in events {
        let running: Vec<usize> = (0..model.len())
            .filter(|&i| model[i].state == ChildState::Running)
            .collect();
        if running.is_empty() {
            break;
        }
        let child = running[sel % running.len()];
        let kind = if abnormal {
            ExitKind::Abnormal
        } else {
            ExitKind::Normal
        };
        let views: Vec<ChildView> = model
            .iter()
            .map(|m| ChildView {
                restart: m.restart,
                state: m.state,
            })
            .collect();
        let plan = planner.plan(
            &views,
            &mut tracker,
            ExitEvent {
                child,
                kind,
                at: Instant::now(),
            },
        );

        let target = dir
            .lookup(&model[child].name)
            .expect("running child is published");
        let msg = if abnormal {
            ProbeMsg::Panic
        } else {
            ProbeMsg::Exit
        };
        target
            .actor_ref::<ProbeMsg>()
            .send_message(msg)
            .expect("alive");

        let mut expected = vec![Seen::Exited(
            model[child].name.clone(),
            model[child].generation,
            abnormal,
        )];
        model[child].last_abnormal = abnormal;
        let mut escalated = false;
        match &plan {
            Plan::Ignore { remove } => {
                if *remove {
                    model.remove(child);
                } else {
                    model[child].state = ChildState::Stopped;
                }
            }
            Plan::Escalate { stop } => {
                for &i in stop {
                    expected.push(Seen::Exited(
                        model[i].name.clone(),
                        model[i].generation,
                        false,
                    ));
                }
                escalated = true;
            }
            Plan::Restart {
                stop,
                remove,
                start,
            } => {
                for &i in stop {
                    expected.push(Seen::Exited(
                        model[i].name.clone(),
                        model[i].generation,
                        false,
                    ));
                }
                for &i in start {
                    model[i].generation += 1;
                    model[i].state = ChildState::Running;
                    expected.push(Seen::Started(model[i].name.clone(), model[i].generation));
                }
                for &i in remove.iter().rev() {
                    model.remove(i);
                }
            }
        }
        let mut seen = Vec::with_capacity(expected.len());
        for _ in 0..expected.len() {
            seen.push(next(&mut rx).await);
        }
        prop_assert_eq!(&seen, &expected, "plan {:?}", plan);
        if escalated {
            tokio::time::timeout(WAIT, handle)
                .await
                .map_err(|_| TestCaseError::fail("supervisor did not escalate"))?
                .map_err(|e| TestCaseError::fail(format!("join: {e}")))?;
            prop_assert!(dir.names().is_empty());
            return Ok(());
        }
    }

    // Nothing unexpected happened after the last step, and the tree agrees with the model.
    let tree = match sup.call(SupervisorMsg::Tree, Some(WAIT)).await {
        Ok(CallResult::Success(t)) => t,
        _ => return Err(TestCaseError::fail("tree call failed")),
    };
    prop_assert!(rx.try_recv().is_err(), "unexpected directory event");
    let actual: Vec<_> = tree
        .children
        .iter()
        .map(|c| (c.name.clone(), c.status, c.generation))
        .collect();
    let predicted: Vec<_> = model
        .iter()
        .map(|m| {
            let status = match m.state {
                ChildState::Running => ChildStatus::Running,
                ChildState::Restarting => ChildStatus::Restarting,
                ChildState::Stopped if m.last_abnormal => ChildStatus::Failed,
                ChildState::Stopped => ChildStatus::Stopped,
            };
            (m.name.clone(), status, m.generation)
        })
        .collect();
    prop_assert_eq!(actual, predicted);
    sup.stop_and_wait(None, Some(WAIT))
        .await
        .map_err(|e| TestCaseError::fail(format!("stop: {e}")))?;
    let _ = handle.await;
    Ok(())
}

fn restart_type() -> impl proptest::strategy::Strategy<Value = RestartType> {
    prop_oneof![
        3 => Just(RestartType::Permanent),
        2 => Just(RestartType::Transient),
        1 => Just(RestartType::Temporary)
    ]
}

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        Just(Strategy::OneForOne),
        Just(Strategy::OneForAll),
        Just(Strategy::RestForOne)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn real_supervisor_matches_the_planner(
        strat in strategy(),
        types in proptest::collection::vec(restart_type(), 1..6),
        max_restarts in 0u32..8,
        events in proptest::collection::vec((0usize..32, any::<bool>()), 1..16),
    ) {
        silence_probe_panics();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
        rt.block_on(run_case(strat, types, max_restarts, events))?;
    }
}
