//! Tests of the supervisor actor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ractor::ActorStatus;
use tokio::sync::broadcast::Receiver;

use super::*;
use crate::supervision::directory::DirectoryEvent;
use crate::supervision::testkit::{Lifecycle, Probe, ProbeMsg, silence_probe_panics};

const WAIT: Duration = Duration::from_secs(2);

/// ractor's name registry is global: every test uses fresh names.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn spec(strategy: Strategy, kids: &[(&str, RestartType)], log: &Lifecycle) -> SupervisorSpec {
    let mut spec = SupervisorSpec::new(unique("sup"), strategy).with_backoff(Backoff::NONE);
    for (id, restart) in kids {
        spec = spec.with_child(Probe::new(log.clone()).spec(*id, *restart));
    }
    spec
}

fn name(spec: &SupervisorSpec, id: &str) -> String {
    format!("{}/{id}", spec.name)
}

fn send(dir: &Directory, name: &str, msg: ProbeMsg) {
    let child = dir.lookup(name).expect("child is published");
    child
        .actor_ref::<ProbeMsg>()
        .send_message(msg)
        .expect("child is alive");
}

fn generation(dir: &Directory, name: &str) -> Option<u64> {
    dir.lookup(name).map(|p| p.generation)
}

/// Waits for `Started { name, generation }`.
async fn started(rx: &mut Receiver<DirectoryEvent>, name: &str, generation: u64) {
    let want = DirectoryEvent::Started {
        name: name.to_owned(),
        generation,
    };
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(ev) if ev == want => return,
                Ok(_) => {}
                Err(e) => panic!("directory events ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {want:?}"));
}

/// Waits for an `Exited` event of `name` and returns whether it was abnormal.
async fn exited(rx: &mut Receiver<DirectoryEvent>, name: &str) -> bool {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(DirectoryEvent::Exited {
                    name: n, abnormal, ..
                }) if n == name => {
                    return abnormal;
                }
                Ok(_) => {}
                Err(e) => panic!("directory events ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {name} to exit"))
}

async fn tree(sup: &ActorRef<SupervisorMsg>) -> TreeNode {
    match sup.call(SupervisorMsg::Tree, Some(WAIT)).await {
        Ok(CallResult::Success(t)) => t,
        _ => panic!("tree call failed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_restarts_only_the_failed_child() {
    let log = Lifecycle::new();
    let s = spec(
        Strategy::OneForOne,
        &[
            ("a", RestartType::Permanent),
            ("b", RestartType::Permanent),
            ("c", RestartType::Permanent),
        ],
        &log,
    );
    let (dir, a, b, c) = (
        s.directory.clone(),
        name(&s, "a"),
        name(&s, "b"),
        name(&s, "c"),
    );
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");
    assert_eq!(log.started(), vec![a.clone(), b.clone(), c.clone()]);
    log.clear();

    send(&dir, &b, ProbeMsg::Panic);
    assert!(exited(&mut rx, &b).await);
    started(&mut rx, &b, 2).await;
    assert_eq!(generation(&dir, &a), Some(1));
    assert_eq!(generation(&dir, &c), Some(1));
    assert_eq!(log.started(), vec![b.clone()]);
    assert!(log.stopped().is_empty());
    let t = tree(&sup).await;
    assert_eq!(t.find(&b).map(|n| (n.generation, n.restarts)), Some((2, 1)));

    sup.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_stops_others_in_reverse_and_restarts_all_in_order() {
    let log = Lifecycle::new();
    let s = spec(
        Strategy::OneForAll,
        &[
            ("a", RestartType::Permanent),
            ("b", RestartType::Permanent),
            ("c", RestartType::Transient),
        ],
        &log,
    );
    let (dir, a, b, c) = (
        s.directory.clone(),
        name(&s, "a"),
        name(&s, "b"),
        name(&s, "c"),
    );
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");
    log.clear();

    send(&dir, &b, ProbeMsg::Panic);
    started(&mut rx, &c, 2).await;
    assert_eq!(log.stopped(), vec![c.clone(), a.clone()]);
    assert_eq!(log.started(), vec![a.clone(), b.clone(), c.clone()]);
    for n in [&a, &b, &c] {
        assert_eq!(generation(&dir, n), Some(2), "{n}");
    }

    sup.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_the_failed_child_and_later_ones() {
    let log = Lifecycle::new();
    let kids = [
        ("a", RestartType::Permanent),
        ("b", RestartType::Permanent),
        ("c", RestartType::Permanent),
        ("d", RestartType::Permanent),
    ];
    let s = spec(Strategy::RestForOne, &kids, &log);
    let dir = s.directory.clone();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|id| name(&s, id));
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");
    log.clear();

    send(&dir, &b, ProbeMsg::Fail);
    started(&mut rx, &d, 2).await;
    assert_eq!(log.stopped(), vec![d.clone(), c.clone()]);
    assert_eq!(log.started(), vec![b.clone(), c.clone(), d.clone()]);
    assert_eq!(generation(&dir, &a), Some(1));

    sup.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_types_decide_on_normal_and_abnormal_exits() {
    let log = Lifecycle::new();
    let kids = [
        ("perm", RestartType::Permanent),
        ("trans", RestartType::Transient),
        ("temp", RestartType::Temporary),
    ];
    let s = spec(Strategy::OneForOne, &kids, &log);
    let dir = s.directory.clone();
    let [perm, trans, temp] = ["perm", "trans", "temp"].map(|id| name(&s, id));
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");

    // Permanent: restarted even after a normal exit.
    send(&dir, &perm, ProbeMsg::Exit);
    assert!(!exited(&mut rx, &perm).await);
    started(&mut rx, &perm, 2).await;

    // Transient: restarted after a panic, not after a normal exit.
    send(&dir, &trans, ProbeMsg::Panic);
    started(&mut rx, &trans, 2).await;
    send(&dir, &trans, ProbeMsg::Exit);
    assert!(!exited(&mut rx, &trans).await);

    // Temporary: never restarted, and removed.
    send(&dir, &temp, ProbeMsg::Panic);
    assert!(exited(&mut rx, &temp).await);

    let t = tree(&sup).await;
    let statuses: Vec<_> = t
        .children
        .iter()
        .map(|n| (n.name.clone(), n.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (perm.clone(), ChildStatus::Running),
            (trans.clone(), ChildStatus::Stopped)
        ]
    );
    assert!(dir.lookup(&trans).is_none());
    assert!(dir.lookup(&temp).is_none());
    assert_eq!(generation(&dir, &perm), Some(2));

    sup.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_restart_increments_generation_and_republishes() {
    let log = Lifecycle::new();
    let s = spec(Strategy::OneForOne, &[("w", RestartType::Permanent)], &log);
    let dir = s.directory.clone();
    let w = name(&s, "w");
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");
    let mut previous = dir.lookup(&w).expect("published");
    assert_eq!(previous.generation, 1);
    for g in 2..=5 {
        send(&dir, &w, ProbeMsg::Panic);
        started(&mut rx, &w, g).await;
        let now = dir.lookup(&w).expect("republished");
        assert_eq!(now.generation, g);
        assert_ne!(now.cell.get_id(), previous.cell.get_id());
        assert!(now.started_at >= previous.started_at);
        assert_eq!(previous.cell.get_status(), ActorStatus::Stopped);
        // The replacement answers under the same registered name.
        let reply = now
            .actor_ref::<ProbeMsg>()
            .call(ProbeMsg::Generation, Some(WAIT))
            .await
            .expect("send");
        assert!(matches!(reply, CallResult::Success(x) if x == g));
        assert!(ractor::registry::where_is(w.clone()).is_some());
        previous = now;
    }
    sup.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_supervisor_stops_children_in_reverse_order() {
    let log = Lifecycle::new();
    let kids = [
        ("a", RestartType::Permanent),
        ("b", RestartType::Transient),
        ("c", RestartType::Temporary),
        ("d", RestartType::Permanent),
    ];
    let s = spec(Strategy::OneForOne, &kids, &log);
    let dir = s.directory.clone();
    let names = ["a", "b", "c", "d"].map(|id| name(&s, id));
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");
    sup.stop_and_wait(None, Some(WAIT)).await.expect("stop");
    let mut reversed = names.to_vec();
    reversed.reverse();
    assert_eq!(log.stopped(), reversed);
    assert!(dir.names().is_empty());
    handle.await.expect("join");
    for n in names {
        assert!(ractor::registry::where_is(n).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_delays_repeated_restarts_without_blocking_the_mailbox() {
    let log = Lifecycle::new();
    let initial = Duration::from_millis(40);
    let s =
        spec(Strategy::OneForOne, &[("w", RestartType::Permanent)], &log).with_backoff(Backoff {
            initial,
            max: Duration::from_millis(80),
        });
    let dir = s.directory.clone();
    let w = name(&s, "w");
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");
    silence_probe_panics();

    let mut delays = Vec::new();
    for g in 2..=4u64 {
        let t0 = Instant::now();
        send(&dir, &w, ProbeMsg::Panic);
        if g > 2 {
            // While the restart waits, the supervisor still answers promptly.
            exited(&mut rx, &w).await;
            let asked = Instant::now();
            let t = tree(&sup).await;
            assert!(
                asked.elapsed() < initial / 2,
                "tree blocked {:?}",
                asked.elapsed()
            );
            assert_eq!(t.children[0].status, ChildStatus::Restarting);
        }
        started(&mut rx, &w, g).await;
        delays.push(t0.elapsed());
    }
    assert!(
        delays[0] < Duration::from_millis(20),
        "first restart immediate: {delays:?}"
    );
    assert!(delays[1] >= initial, "second restart backs off: {delays:?}");
    assert!(
        delays[2] >= Duration::from_millis(80),
        "third restart doubles: {delays:?}"
    );
    sup.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_supervisor_fails_when_intensity_is_exceeded() {
    let log = Lifecycle::new();
    let s = spec(
        Strategy::OneForOne,
        &[
            ("a", RestartType::Permanent),
            ("b", RestartType::Permanent),
            ("c", RestartType::Permanent),
        ],
        &log,
    )
    .with_intensity(Intensity {
        max_restarts: 2,
        period: Duration::from_secs(10),
    });
    let dir = s.directory.clone();
    let [a, b, c] = ["a", "b", "c"].map(|id| name(&s, id));
    let mut rx = dir.subscribe();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");
    for g in 2..=3 {
        send(&dir, &b, ProbeMsg::Panic);
        started(&mut rx, &b, g).await;
    }
    log.clear();
    send(&dir, &b, ProbeMsg::Panic);
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("supervisor exits")
        .expect("join");
    assert_eq!(sup.get_status(), ActorStatus::Stopped);
    assert_eq!(log.stopped(), vec![c.clone(), a.clone()]);
    assert!(log.started().is_empty());
    assert!(dir.names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_restarts_count_towards_intensity() {
    let log = Lifecycle::new();
    let refuse = Arc::new(AtomicBool::new(false));
    let mut s = SupervisorSpec::new(unique("sup"), Strategy::OneForOne)
        .with_backoff(Backoff::NONE)
        .with_intensity(Intensity {
            max_restarts: 3,
            period: Duration::from_secs(10),
        });
    s = s.with_child(
        Probe::new(log.clone())
            .failing_start_while(refuse.clone())
            .spec("w", RestartType::Permanent),
    );
    let dir = s.directory.clone();
    let w = name(&s, "w");
    let (_sup, handle) = Supervisor::start(s, None).await.expect("start");
    refuse.store(true, Ordering::SeqCst);
    send(&dir, &w, ProbeMsg::Panic);
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("supervisor escalates after repeated start failures")
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_initial_start_stops_started_children_in_reverse() {
    let log = Lifecycle::new();
    let refuse = Arc::new(AtomicBool::new(true));
    let s = spec(
        Strategy::OneForOne,
        &[("a", RestartType::Permanent), ("b", RestartType::Permanent)],
        &log,
    )
    .with_child(
        Probe::new(log.clone())
            .failing_start_while(refuse)
            .spec("c", RestartType::Permanent),
    );
    let [a, b] = ["a", "b"].map(|id| name(&s, id));
    let err = Supervisor::start(s, None).await.expect_err("start fails");
    assert!(err.to_string().contains("failed to start"), "{err}");
    assert_eq!(log.stopped(), vec![b, a]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_can_be_added_and_terminated_at_runtime() {
    let log = Lifecycle::new();
    let s = spec(Strategy::OneForOne, &[("a", RestartType::Permanent)], &log);
    let dir = s.directory.clone();
    let sup_name = s.name.clone();
    let (sup, handle) = Supervisor::start(s, None).await.expect("start");

    let add = |id: &'static str| {
        let spec = Probe::new(log.clone()).spec(id, RestartType::Permanent);
        move |reply| SupervisorMsg::StartChild(spec, reply)
    };
    let published = sup.call(add("b"), Some(WAIT)).await.expect("send");
    let CallResult::Success(Ok(p)) = published else {
        panic!("start_child failed")
    };
    assert_eq!(p.generation, 1);
    let dup = sup.call(add("b"), Some(WAIT)).await.expect("send");
    assert!(matches!(
        dup,
        CallResult::Success(Err(SupervisorError::DuplicateChild { .. }))
    ));

    let b = format!("{sup_name}/b");
    let gone = sup
        .call(|r| SupervisorMsg::TerminateChild("b".into(), r), Some(WAIT))
        .await
        .expect("send");
    assert!(matches!(gone, CallResult::Success(Ok(()))));
    assert!(dir.lookup(&b).is_none());
    assert_eq!(log.stopped(), vec![b]);
    assert_eq!(tree(&sup).await.children.len(), 1);
    let unknown = sup
        .call(
            |r| SupervisorMsg::TerminateChild("zz".into(), r),
            Some(WAIT),
        )
        .await
        .expect("send");
    assert!(matches!(
        unknown,
        CallResult::Success(Err(SupervisorError::UnknownChild { .. }))
    ));

    sup.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_child_ids_are_rejected() {
    let log = Lifecycle::new();
    let s = spec(
        Strategy::OneForOne,
        &[("a", RestartType::Permanent), ("a", RestartType::Permanent)],
        &log,
    );
    assert!(Supervisor::start(s, None).await.is_err());
    assert!(log.started().is_empty());
}
