//! How fast the cluster noticed a lost node and moved its work: the runner polls every node's
//! membership view (`fudo.v1.Cluster/Members`) during the run, and this module turns those
//! samples and the request history into, per fault that loses nodes,
//! - **detection**: time from the fault until a surviving node's region links declare every
//!   lost node dead (the first survivor, and all of them);
//! - **sessions moved**: time from the fault until every recurrent session that lived on a
//!   lost node has answered a step from a surviving node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinSet};

use super::{
    history::{Op, OpKind, offset_us},
    report::FaultReport,
    scenario::Fault,
};
use crate::api::proto::fudo::v1::{MembersRequest, cluster_client::ClusterClient};

/// The state recorded (with an empty peer) when an observer stops answering.
pub const UNREACHABLE: &str = "unreachable";

/// One observed state change: `observer` saw `peer` enter `state` at `t_us` (or, with an
/// empty `peer` and state [`UNREACHABLE`], stopped answering).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSample {
    /// µs since the end of warm-up.
    pub t_us: i64,
    /// The node whose view this is.
    pub observer: String,
    /// The member it judged.
    pub peer: String,
    /// `joining`, `alive`, `suspect` or `dead`.
    pub state: String,
}

/// Polls every `(node, url)` every `every` until `stop` turns true; returns the changes seen.
pub async fn watch_members(
    nodes: Vec<(String, String)>,
    t0: Instant,
    every: Duration,
    stop: watch::Receiver<bool>,
) -> Vec<MemberSample> {
    let mut tasks = JoinSet::new();
    for (observer, url) in nodes {
        let mut stop = stop.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            let mut last: HashMap<String, String> = HashMap::new();
            let mut client = None;
            while !*stop.borrow() {
                if client.is_none() {
                    client = tokio::time::timeout(every * 4, ClusterClient::connect(url.clone()))
                        .await
                        .ok()
                        .and_then(Result::ok);
                }
                if let Some(c) = client.as_mut() {
                    match tokio::time::timeout(every * 4, c.members(MembersRequest {})).await {
                        Ok(Ok(view)) => {
                            let t_us = offset_us(Instant::now(), t0);
                            for m in view.into_inner().members {
                                let peer = m.identity.map(|i| i.node).unwrap_or(m.url);
                                if last.get(&peer) != Some(&m.state) {
                                    last.insert(peer.clone(), m.state.clone());
                                    out.push(MemberSample {
                                        t_us,
                                        observer: observer.clone(),
                                        peer,
                                        state: m.state,
                                    });
                                }
                            }
                        }
                        Ok(Err(_)) | Err(_) => {
                            client = None;
                            if !last.is_empty() {
                                // The observer itself is gone: its view is void until it
                                // answers again (as a new incarnation, knowing nobody yet).
                                last.clear();
                                out.push(MemberSample {
                                    t_us: offset_us(Instant::now(), t0),
                                    observer: observer.clone(),
                                    peer: String::new(),
                                    state: UNREACHABLE.into(),
                                });
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => {}
                }
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap_or_default());
    }
    all.sort_by_key(|s| s.t_us);
    all
}

/// Fills in the detection and session-move times of every fault that lost nodes: `lost[i]` is
/// what fault `i` (sorted order, as `reports`) took away, `members` what every node saw.
pub fn annotate(
    faults: &[Fault],
    reports: &mut [FaultReport],
    lost: &[Vec<String>],
    members: &[MemberSample],
    ops: &[Op],
) {
    for ((f, report), lost) in faults.iter().zip(reports.iter_mut()).zip(lost) {
        if lost.is_empty() {
            continue;
        }
        let at_us = i64::try_from(f.at.as_micros()).unwrap_or(i64::MAX);
        (report.detected_s, report.detected_all_s) = detection_s(members, lost, at_us);
        if f.kind.loses_nodes_to_clients() {
            report.lost_to_clients = true;
            (report.sessions_on_lost_nodes, report.sessions_moved_s) =
                sessions_moved(ops, lost, at_us);
        }
        report.lost_nodes.clone_from(lost);
    }
}

/// Detection of the loss of `lost` at `at_us`: seconds until the first surviving observer, and
/// until every surviving observer, saw all of `lost` dead. Survivors are the nodes outside
/// `lost` that knew every lost node as alive (or suspect) when the fault hit; a node that was
/// itself down then and has restarted since has nothing to detect. `None` where it never
/// happened (before the run ended), or when no such survivor was observed at all.
#[must_use]
pub fn detection_s(
    samples: &[MemberSample],
    lost: &[String],
    at_us: i64,
) -> (Option<f64>, Option<f64>) {
    let lost: BTreeSet<&str> = lost.iter().map(String::as_str).collect();
    if lost.is_empty() {
        return (None, None);
    }
    // observer → peer → state, replayed in time order.
    let mut views: BTreeMap<&str, HashMap<&str, &str>> = BTreeMap::new();
    let mut detected: BTreeMap<&str, Option<i64>> = BTreeMap::new();
    let knew = |view: &HashMap<&str, &str>| {
        lost.iter()
            .all(|p| matches!(view.get(p), Some(&"alive") | Some(&"suspect")))
    };
    let mut judged = false;
    for s in samples {
        if lost.contains(s.observer.as_str()) {
            continue;
        }
        if !judged && s.t_us >= at_us {
            // The fault hits: the survivors are those that knew every lost node as up.
            judged = true;
            for (observer, view) in &views {
                if knew(view) {
                    detected.insert(observer, None);
                }
            }
        }
        if s.peer.is_empty() {
            views.remove(s.observer.as_str());
            continue;
        }
        let view = views.entry(&s.observer).or_default();
        view.insert(&s.peer, &s.state);
        if let Some(entry) = detected.get_mut(s.observer.as_str())
            && entry.is_none()
            && lost.iter().all(|p| view.get(p) == Some(&"dead"))
        {
            *entry = Some(s.t_us);
        }
    }
    let secs = |t: i64| (t - at_us) as f64 / 1e6;
    let times: Vec<Option<i64>> = detected.values().copied().collect();
    let first = times.iter().flatten().min().map(|&t| secs(t));
    let all = if times.is_empty() || times.iter().any(Option::is_none) {
        None
    } else {
        times.iter().flatten().max().map(|&t| secs(t))
    };
    (first, all)
}

/// Sessions that lived on `lost` nodes when the fault hit at `at_us` (their last answered step
/// came from one), and the seconds until the last of them answered a step from a surviving
/// node (`None` if one never did).
#[must_use]
pub fn sessions_moved(ops: &[Op], lost: &[String], at_us: i64) -> (u64, Option<f64>) {
    let mut by_session: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.kind == OpKind::Step && o.ok) {
        by_session.entry(&op.process).or_default().push(op);
    }
    let on_lost = |op: &Op| op.node().is_some_and(|n| lost.iter().any(|l| l == n));
    let mut moved = 0u64;
    let mut worst: Option<i64> = Some(0);
    for steps in by_session.values_mut() {
        steps.sort_by_key(|o| o.end_us);
        let Some(last_before) = steps.iter().rev().find(|o| o.end_us < at_us) else {
            continue;
        };
        if !on_lost(last_before) {
            continue;
        }
        moved += 1;
        let back = steps.iter().find(|o| o.end_us >= at_us && !on_lost(o));
        worst = match (worst, back) {
            (Some(w), Some(o)) => Some(w.max(o.end_us - at_us)),
            _ => None,
        };
    }
    let worst = if moved == 0 {
        None
    } else {
        worst.map(|t| t as f64 / 1e6)
    };
    (moved, worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: i64, observer: &str, peer: &str, state: &str) -> MemberSample {
        MemberSample {
            t_us: t_ms * 1000,
            observer: observer.into(),
            peer: peer.into(),
            state: state.into(),
        }
    }

    fn step(process: &str, seq: u64, end_ms: i64, node: &str) -> Op {
        Op {
            id: seq,
            process: process.into(),
            kind: OpKind::Step,
            seq: Some(seq),
            start_us: end_ms * 1000 - 1000,
            end_us: end_ms * 1000,
            ok: true,
            status: "OK".into(),
            error: None,
            served_by: Some(format!("{node}/lstm_policy/shard-0")),
            action: Some(1),
            replayed: false,
            owner_epoch: None,
        }
    }

    #[test]
    fn detection_is_when_survivors_see_every_lost_node_dead() {
        let lost = vec!["c".to_owned(), "d".to_owned()];
        let samples = vec![
            sample(-500, "a", "c", "alive"),
            sample(-500, "a", "d", "alive"),
            sample(-500, "b", "c", "alive"),
            sample(-500, "b", "d", "alive"),
            sample(-400, "c", "a", "alive"),
            sample(400, "a", "c", "dead"),
            sample(500, "a", "d", "dead"),
            sample(600, "b", "d", "dead"),
            sample(700, "b", "c", "dead"),
        ];
        let (first, all) = detection_s(&samples, &lost, 0);
        assert_eq!(first, Some(0.5));
        assert_eq!(all, Some(0.7));
        let (first, all) = detection_s(&samples[..7], &lost, 0);
        assert_eq!((first, all), (Some(0.5), None), "b never saw c dead");
        // e restarted after the fault: it never knew c and d, so it is not asked to detect.
        let mut with_newcomer = samples.clone();
        with_newcomer.insert(6, sample(550, "e", "c", "joining"));
        assert_eq!(
            detection_s(&with_newcomer, &lost, 0),
            (Some(0.5), Some(0.7))
        );
        // f knew c and d alive, then went down itself before the fault: not a survivor.
        let mut gone = with_newcomer.clone();
        gone.insert(0, sample(-600, "f", "c", "alive"));
        gone.insert(1, sample(-600, "f", "d", "alive"));
        gone.insert(2, sample(-300, "f", "", UNREACHABLE));
        assert_eq!(detection_s(&gone, &lost, 0), (Some(0.5), Some(0.7)));
    }

    #[test]
    fn sessions_moved_counts_only_sessions_of_lost_nodes() {
        let ops = vec![
            step("session-0", 1, -100, "c"),
            step("session-0", 2, 300, "a"),
            step("session-1", 1, -50, "a"),
            step("session-1", 2, 20, "a"),
            step("session-2", 1, -10, "c"),
            step("session-2", 2, 900, "b"),
        ];
        let (n, worst) = sessions_moved(&ops, &["c".into()], 0);
        assert_eq!(n, 2);
        assert_eq!(worst, Some(0.9));
        let (n, worst) = sessions_moved(&ops[..5], &["c".into()], 0);
        assert_eq!((n, worst), (2, None), "session-2 never came back");
    }
}
