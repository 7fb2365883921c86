//! Tests of the session table.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const DIM: usize = 2;

fn req(session: &str, seq: Option<u64>) -> StepRequest {
    StepRequest {
        model: "lstm".into(),
        model_version: "v1".into(),
        new_version: String::new(),
        session_id: session.into(),
        seq,
        start: false,
        end: false,
        state_dim: DIM,
        min_epoch: 0,
    }
}

fn start(session: &str, seq: Option<u64>) -> StepRequest {
    StepRequest {
        start: true,
        ..req(session, seq)
    }
}

/// A policy whose state counts its steps: action = previous count, next = count + 1.
async fn count(prev: Vec<f32>) -> Result<StepComputed, String> {
    Ok(StepComputed {
        output: StepOutput {
            logits: prev.clone(),
            value: prev[0] * 0.5,
            action: prev[0] as i64,
        },
        next_state: prev.iter().map(|x| x + 1.0).collect(),
        moved_to: None,
        observed: Vec::new(),
    })
}

fn table(retained: usize) -> SessionTable {
    SessionTable::new(
        SessionStore::memory(),
        SessionConfig {
            retained_results: retained,
            ..SessionConfig::default()
        },
    )
}

fn session_err<T: std::fmt::Debug>(r: Result<T, StepError<String>>) -> SessionError {
    match r {
        Err(StepError::Session(e)) => e,
        other => panic!("expected a session error, got {other:?}"),
    }
}

#[tokio::test]
async fn steps_replays_and_refuses_with_the_right_errors() {
    let t = table(2);
    let o = t.step(start("s", None), count).await.unwrap();
    assert_eq!((o.seq, o.output.action, o.replayed), (1, 0, false));
    assert_eq!(o.durable_watermark, 1, "memory store acknowledges at once");
    let o2 = t.step(req("s", None), count).await.unwrap();
    assert_eq!((o2.seq, o2.output.action), (2, 1));
    let o3 = t.step(req("s", Some(3)), count).await.unwrap();
    assert_eq!(o3.output.action, 2);

    // Retry of seq 2: recorded result, no step (the next real step still sees count 3).
    let r = t
        .step(req("s", Some(2)), |_| async {
            Err::<StepComputed, _>("must not run".to_string())
        })
        .await
        .unwrap();
    assert!(r.replayed);
    assert_eq!(r.output, o2.output);

    let e = session_err(t.step(req("s", Some(1)), count).await);
    assert!(
        matches!(
            e,
            SessionError::SeqStale {
                oldest_retained: 2,
                got: 1,
                next: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let e = session_err(t.step(req("s", Some(6)), count).await);
    assert!(
        matches!(
            e,
            SessionError::SeqGap {
                expected: 4,
                got: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("expected seq 4"), "{e}");

    let end = StepRequest {
        end: true,
        ..req("s", Some(4))
    };
    let o4 = t.step(end.clone(), count).await.unwrap();
    assert_eq!(o4.output.action, 3);
    let e = session_err(t.step(req("s", None), count).await);
    assert!(
        matches!(e, SessionError::Ended { last_seq: 4, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("sequence_start"), "{e}");
    let again = t.step(end, count).await.unwrap();
    assert!(again.replayed && again.output == o4.output);

    // A new episode after the end starts from zero again.
    let o5 = t.step(start("s", Some(10)), count).await.unwrap();
    assert_eq!((o5.seq, o5.output.action), (10, 0));
    let o6 = t.step(req("s", None), count).await.unwrap();
    assert_eq!((o6.seq, o6.output.action), (11, 1));
    // A retried start of the current episode replays.
    let s = t.step(start("s", Some(10)), count).await.unwrap();
    assert!(s.replayed && s.output == o5.output);
}

#[tokio::test]
async fn unknown_session_is_not_started_and_leaves_nothing_behind() {
    let t = table(4);
    let e = session_err(t.step(req("ghost", Some(1)), count).await);
    assert!(matches!(e, SessionError::NotStarted { .. }), "{e:?}");
    assert!(e.to_string().contains("sequence_start=true"), "{e}");
    assert_eq!(t.len(), 0);
}

#[tokio::test]
async fn failed_infer_changes_nothing() {
    let t = table(4);
    let e = t
        .step(start("s", Some(1)), |_| async {
            Err::<StepComputed, _>("gpu".to_string())
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StepError::Infer(ref m) if m == "gpu"));
    assert_eq!(t.len(), 0, "a failed start leaves no session");
    t.step(start("s", Some(1)), count).await.unwrap();
    let e = t
        .step(req("s", Some(2)), |_| async {
            Err::<StepComputed, _>("oom".to_string())
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StepError::Infer(_)));
    let o = t.step(req("s", Some(2)), count).await.unwrap();
    assert_eq!((o.output.action, o.replayed), (1, false));
    assert_eq!(t.store().durable_watermark("s"), 2);
}

#[tokio::test]
async fn version_and_shape_are_checked() {
    let t = table(4);
    t.step(start("s", None), count).await.unwrap();
    let v2 = StepRequest {
        model_version: "v2".into(),
        ..req("s", None)
    };
    let e = session_err(t.step(v2, count).await);
    assert!(
        matches!(&e, SessionError::VersionMismatch { pinned, requested, .. }
            if pinned == "lstm@v1" && requested == "lstm@v2"),
        "{e:?}"
    );
    let wide = StepRequest {
        state_dim: 3,
        min_epoch: 0,
        ..req("s", None)
    };
    let e = session_err(t.step(wide, count).await);
    assert!(
        matches!(
            e,
            SessionError::StateShape {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{e:?}"
    );
    let e = session_err(
        t.step(req("s", None), |_| async {
            Ok::<_, String>(StepComputed {
                output: StepOutput {
                    logits: vec![],
                    value: 0.0,
                    action: 0,
                },
                next_state: vec![1.0],
                moved_to: None,
                observed: Vec::new(),
            })
        })
        .await,
    );
    assert!(
        matches!(
            e,
            SessionError::StateShape {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e:?}"
    );
    // Neither refused step moved the session.
    assert_eq!(t.snapshot("s").await.unwrap().seq, 1);
}

#[tokio::test]
async fn a_new_table_on_the_same_store_continues_and_eviction_reloads() {
    let store = SessionStore::memory();
    let t = SessionTable::new(
        store.clone(),
        SessionConfig {
            retained_results: 4,
            idle_ttl: Duration::ZERO,
            ..SessionConfig::default()
        },
    );
    t.step(start("s", None), count).await.unwrap();
    let o2 = t.step(req("s", None), count).await.unwrap();
    assert_eq!(t.evict_idle(), 1);
    assert_eq!(t.len(), 0);
    let r = t.step(req("s", Some(2)), count).await.unwrap();
    assert!(
        r.replayed && r.output == o2.output,
        "retained results survive eviction"
    );
    drop(t);

    let fresh = SessionTable::new(store, SessionConfig::default());
    let o3 = fresh.step(req("s", None), count).await.unwrap();
    assert_eq!((o3.seq, o3.output.action, o3.durable_watermark), (3, 2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steps_of_one_session_are_serialized_and_sessions_run_in_parallel() {
    let t = table(64);
    t.step(start("a", None), count).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (t, calls) = (t.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            t.step(req("a", None), |prev| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                count(prev).await
            })
            .await
            .unwrap()
        }));
    }
    let mut actions: Vec<i64> = Vec::new();
    for task in tasks {
        actions.push(task.await.unwrap().output.action);
    }
    actions.sort_unstable();
    assert_eq!(
        actions,
        (1..=40).collect::<Vec<i64>>(),
        "each seq stepped once"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 40);

    // While a step of "a" is parked inside infer, "b" makes progress.
    let (release, parked) = tokio::sync::oneshot::channel::<()>();
    let t2 = t.clone();
    let blocked = tokio::spawn(async move {
        t2.step(req("a", None), |prev| async move {
            parked.await.ok();
            count(prev).await
        })
        .await
    });
    tokio::time::timeout(Duration::from_secs(5), t.step(start("b", None), count))
        .await
        .expect("another session must not wait for a's infer")
        .unwrap();
    release.send(()).unwrap();
    assert_eq!(blocked.await.unwrap().unwrap().output.action, 41);
}

#[test]
fn plan_without_runtime_state() {
    let snapshot = SessionSnapshot {
        model: "lstm".into(),
        model_version: "v1".into(),
        seq: 5,
        ended: false,
        state: vec![0.0; DIM],
        results: VecDeque::new(),
        recent_obs: VecDeque::new(),
    };
    assert_eq!(
        plan(Some(&snapshot), &req("s", None)).unwrap(),
        Plan::Step {
            seq: 6,
            fresh: false
        }
    );
    assert_eq!(
        plan(Some(&snapshot), &start("s", Some(9))).unwrap(),
        Plan::Step {
            seq: 9,
            fresh: true
        }
    );
    assert!(matches!(
        plan(Some(&snapshot), &start("s", Some(5))),
        Err(SessionError::SeqStale {
            oldest_retained: 6,
            ..
        })
    ));
    assert_eq!(
        plan(None, &start("s", None)).unwrap(),
        Plan::Step {
            seq: 1,
            fresh: true
        }
    );
}

#[tokio::test]
async fn a_session_that_comes_back_takes_the_newer_snapshot_from_the_store() {
    // Two nodes sharing one store: the session moves a → b → a.
    let store = SessionStore::memory();
    let a = SessionTable::new(store.clone(), SessionConfig::default());
    let b = SessionTable::new(store, SessionConfig::default());
    a.step(start("s", Some(1)), count).await.unwrap();
    a.step(req("s", Some(2)), count).await.unwrap();
    for seq in 3..=5 {
        b.step(req("s", Some(seq)), count).await.unwrap();
    }
    // a still holds seq 2 in memory; the store has seq 5 from b.
    let o = a.step(req("s", Some(6)), count).await.unwrap();
    assert_eq!((o.seq, o.output.action), (6, 5), "continued from b's state");
    // A real gap is still a gap.
    let e = session_err(a.step(req("s", Some(9)), count).await);
    assert!(matches!(e, SessionError::SeqGap { expected: 7, .. }), "{e}");
}

#[tokio::test]
async fn a_session_is_pinned_to_the_version_it_started_on() {
    let t = table(4);
    let versions = std::sync::Mutex::new(Vec::new());
    let record = |input: StepInput| {
        versions.lock().unwrap().push(input.version.clone());
        count(input.state)
    };
    // The routing rule picked v2 for the new session; the request named no version.
    let first = StepRequest {
        model_version: String::new(),
        new_version: "v2".into(),
        ..start("s", None)
    };
    t.step_with(first, record).await.unwrap();
    // Later steps name no version and follow the session's, whatever the rule says now.
    let next = StepRequest {
        model_version: String::new(),
        new_version: "v3".into(),
        ..req("s", None)
    };
    t.step_with(next.clone(), record).await.unwrap();
    assert_eq!(*versions.lock().unwrap(), vec!["v2", "v2"]);
    assert_eq!(t.snapshot("s").await.unwrap().model_version, "v2");
    // Naming another version is a mismatch.
    let e = session_err(t.step(req("s", None), count).await);
    assert!(matches!(e, SessionError::VersionMismatch { .. }), "{e:?}");
    // A step computed by another version (the pinned one is gone) moves the session to it.
    t.step_with(next, |input| async move {
        let mut computed = count(input.state).await?;
        computed.moved_to = Some("v3".into());
        Ok::<_, String>(computed)
    })
    .await
    .unwrap();
    assert_eq!(t.snapshot("s").await.unwrap().model_version, "v3");
}

#[tokio::test]
async fn sessions_keep_a_window_of_recent_observations_and_count_by_version() {
    let t = SessionTable::new(
        SessionStore::memory(),
        SessionConfig {
            replay_window: 3,
            ..SessionConfig::default()
        },
    );
    let seen = std::sync::Mutex::new(Vec::new());
    for seq in 1..=5u64 {
        let r = if seq == 1 {
            start("s", None)
        } else {
            req("s", None)
        };
        t.step_with(r, |input: StepInput| {
            seen.lock().unwrap().push(input.recent_obs.len());
            async move {
                let mut c = count(input.state).await?;
                c.observed = vec![seq as f32];
                Ok::<_, String>(c)
            }
        })
        .await
        .unwrap();
    }
    // The closure saw the window before each step: 0, 1, 2, 3, 3.
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 3]);
    let snap = t.snapshot("s").await.unwrap();
    assert_eq!(
        snap.recent_obs,
        VecDeque::from([vec![3.0], vec![4.0], vec![5.0]])
    );
    assert_eq!(t.pinned_to("lstm", "v1"), 1);
    assert_eq!(t.pinned_to("lstm", "v2"), 0);
    t.step(
        StepRequest {
            end: true,
            ..req("s", None)
        },
        count,
    )
    .await
    .unwrap();
    assert_eq!(
        t.pinned_to("lstm", "v1"),
        0,
        "an ended session pins nothing"
    );
}
