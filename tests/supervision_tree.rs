//! Nested supervision trees: escalation to the parent, introspection, shutdown across levels.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fudo::supervision::testkit::{Lifecycle, Probe, ProbeMsg, silence_probe_panics};
use fudo::supervision::{
    Backoff, ChildStatus, Directory, DirectoryEvent, Intensity, RestartType, Strategy, Supervisor,
    SupervisorMsg, SupervisorSpec, TreeNode,
};
use ractor::rpc::CallResult;
use ractor::{ActorRef, ActorStatus};
use tokio::sync::broadcast::Receiver;

const WAIT: Duration = Duration::from_secs(2);

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

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

fn send(dir: &Directory, name: &str, msg: ProbeMsg) {
    dir.lookup(name)
        .expect("published")
        .actor_ref::<ProbeMsg>()
        .send_message(msg)
        .expect("alive");
}

async fn tree(sup: &ActorRef<SupervisorMsg>) -> TreeNode {
    match sup.call(SupervisorMsg::Tree, Some(WAIT)).await {
        Ok(CallResult::Success(t)) => t,
        _ => panic!("tree call failed"),
    }
}

/// A parent (one_for_one) with a probe `x` and a nested supervisor holding `n1`, `n2`.
struct Fixture {
    parent: SupervisorSpec,
    nested: String,
    x: String,
    n1: String,
    n2: String,
    dir: Directory,
    log: Lifecycle,
}

fn fixture(nested_max_restarts: u32) -> Fixture {
    let log = Lifecycle::new();
    let dir = Directory::default();
    let nested = unique("nested");
    let nested_factory = {
        let (log, dir, nested) = (log.clone(), dir.clone(), nested.clone());
        Arc::new(move || {
            SupervisorSpec::new(nested.clone(), Strategy::OneForOne)
                .with_directory(dir.clone())
                .with_backoff(Backoff::NONE)
                .with_intensity(Intensity {
                    max_restarts: nested_max_restarts,
                    period: Duration::from_secs(10),
                })
                .with_child(Probe::new(log.clone()).spec("n1", RestartType::Permanent))
                .with_child(Probe::new(log.clone()).spec("n2", RestartType::Permanent))
        })
    };
    let parent = SupervisorSpec::new(unique("parent"), Strategy::OneForOne)
        .with_directory(dir.clone())
        .with_backoff(Backoff::NONE)
        .with_child(
            Probe::new(log.clone())
                .spec("x", RestartType::Permanent)
                .with_queue_depth(Arc::new(|| 42)),
        )
        .with_child(Supervisor::child_spec(
            nested_factory,
            RestartType::Permanent,
        ));
    Fixture {
        x: format!("{}/x", parent.name),
        n1: format!("{nested}/n1"),
        n2: format!("{nested}/n2"),
        nested,
        parent,
        dir,
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_intensity_escalates_to_the_parent_which_restarts_the_subtree() {
    silence_probe_panics();
    let f = fixture(1);
    let mut rx = f.dir.subscribe();
    let (parent, handle) = Supervisor::start(f.parent, None).await.expect("start");
    let first_nested = f.dir.lookup(&f.nested).expect("nested published");
    assert_eq!(first_nested.generation, 1);

    // One restart is within the nested supervisor's intensity.
    send(&f.dir, &f.n1, ProbeMsg::Panic);
    started(&mut rx, &f.n1, 2).await;
    f.log.clear();

    // The second one exceeds it: the nested supervisor stops n2 and fails; the parent restarts
    // it, and it starts n1 and n2 again.
    send(&f.dir, &f.n1, ProbeMsg::Panic);
    started(&mut rx, &f.nested, 2).await;
    assert_eq!(first_nested.cell.get_status(), ActorStatus::Stopped);
    assert_eq!(f.log.stopped(), vec![f.n2.clone()]);
    assert_eq!(f.log.started(), vec![f.n1.clone(), f.n2.clone()]);
    // Generations keep growing per name across the nested supervisor's restart.
    assert_eq!(f.dir.lookup(&f.n1).map(|p| p.generation), Some(3));
    assert_eq!(f.dir.lookup(&f.n2).map(|p| p.generation), Some(2));
    // The sibling was not touched.
    assert_eq!(f.dir.lookup(&f.x).map(|p| p.generation), Some(1));

    let t = tree(&parent).await;
    let nested = t.find(&f.nested).expect("nested in tree");
    assert_eq!(
        (nested.status, nested.generation, nested.restarts),
        (ChildStatus::Running, 2, 1)
    );
    assert_eq!(nested.kind, "supervisor");

    parent.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_reports_nested_children_and_queue_depth() {
    let f = fixture(10);
    let (parent, handle) = Supervisor::start(f.parent, None).await.expect("start");
    let t = tree(&parent).await;
    assert_eq!(t.kind, "supervisor");
    assert_eq!(t.len(), 5);
    let names: Vec<_> = t.children.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, vec![f.x.clone(), f.nested.clone()]);
    assert_eq!(t.children[0].queue_depth, Some(42));
    let nested = &t.children[1];
    let grandchildren: Vec<_> = nested
        .children
        .iter()
        .map(|c| (c.name.clone(), c.status, c.generation))
        .collect();
    assert_eq!(
        grandchildren,
        vec![
            (f.n1.clone(), ChildStatus::Running, 1),
            (f.n2.clone(), ChildStatus::Running, 1)
        ]
    );
    let json = serde_json::to_string(&t).expect("serialize");
    assert!(json.contains(&f.n2), "{json}");
    parent.stop(None);
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_root_stops_every_level_in_reverse_start_order() {
    let f = fixture(10);
    let (parent, handle) = Supervisor::start(f.parent, None).await.expect("start");
    assert_eq!(
        f.log.started(),
        vec![f.x.clone(), f.n1.clone(), f.n2.clone()]
    );
    parent.stop_and_wait(None, Some(WAIT)).await.expect("stop");
    assert_eq!(
        f.log.stopped(),
        vec![f.n2.clone(), f.n1.clone(), f.x.clone()]
    );
    assert!(f.dir.names().is_empty());
    handle.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_that_escalates_terminates_and_frees_every_name() {
    silence_probe_panics();
    let log = Lifecycle::new();
    let spec = SupervisorSpec::new(unique("root"), Strategy::OneForAll)
        .with_backoff(Backoff::NONE)
        .with_intensity(Intensity {
            max_restarts: 0,
            period: Duration::from_secs(10),
        })
        .with_child(Probe::new(log.clone()).spec("a", RestartType::Permanent))
        .with_child(Probe::new(log.clone()).spec("b", RestartType::Permanent));
    let (dir, a, b) = (
        spec.directory.clone(),
        format!("{}/a", spec.name),
        format!("{}/b", spec.name),
    );
    let (_root, handle) = Supervisor::start(spec, None).await.expect("start");
    send(&dir, &b, ProbeMsg::Panic);
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("root terminates")
        .expect("join");
    assert_eq!(log.stopped(), vec![a.clone()]);
    assert!(ractor::registry::where_is(a).is_none());
    assert!(ractor::registry::where_is(b).is_none());
}
