use proptest::prelude::*;

use super::*;
use crate::api::proto::fudo::v1::ModelLoad;

const A: &str = "http://a:1";
const B: &str = "http://b:1";
const C: &str = "http://c:1";

fn config() -> MembershipConfig {
    MembershipConfig::for_heartbeat(Duration::from_millis(100), 8.0, Duration::from_millis(300))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn identity(node: &str, region: &str, incarnation: u64) -> NodeIdentity {
    NodeIdentity {
        node: node.into(),
        region: region.into(),
        az: format!("{region}a"),
        url: String::new(),
        incarnation,
    }
}

/// Echoes from `url` every `every` from `start` for `n` beats, evaluating after each; returns
/// the time of the last echo and every transition seen.
fn beat(
    m: &Membership,
    url: &str,
    start: Instant,
    every: Duration,
    n: u32,
) -> (Instant, Vec<Transition>) {
    let mut t = start;
    let mut seen = Vec::new();
    for _ in 0..n {
        t += every;
        m.on_echo(url, None, None, Some(ms(1)), t);
        seen.extend(m.evaluate(t));
    }
    (t, seen)
}

/// Evaluates every 10 ms from `from` until `url` is in `state` or `limit` passes.
fn time_until(
    m: &Membership,
    url: &str,
    from: Instant,
    limit: Duration,
    state: PeerState,
) -> Option<Duration> {
    let mut t = from;
    while t <= from + limit {
        m.evaluate(t);
        if m.state(url) == Some(state) {
            return Some(t - from);
        }
        t += ms(10);
    }
    None
}

#[test]
fn a_steady_peer_goes_from_joining_to_alive_and_stays() {
    let t0 = Instant::now();
    let m = Membership::new(config(), &[A.into()], t0);
    assert_eq!(m.state(A), Some(PeerState::Joining));
    let (_, seen) = beat(&m, A, t0, ms(100), 50);
    assert_eq!(m.state(A), Some(PeerState::Alive));
    assert_eq!(seen.len(), 1, "only joining → alive: {seen:?}");
}

#[test]
fn a_silent_peer_is_dead_within_a_second_but_not_before_the_stability_window() {
    let t0 = Instant::now();
    let m = Membership::new(config(), &[A.into()], t0);
    let (last, _) = beat(&m, A, t0, ms(100), 30);
    let dead_after = time_until(&m, A, last, ms(2000), PeerState::Dead).expect("declared dead");
    assert!(dead_after <= ms(1000), "detection took {dead_after:?}");
    assert!(
        dead_after >= ms(300),
        "declared dead after only {dead_after:?}"
    );
    assert_eq!(m.members(last + dead_after)[0].deaths, 1);
}

#[test]
fn one_missed_heartbeat_never_kills() {
    let t0 = Instant::now();
    let m = Membership::new(config(), &[A.into()], t0);
    let (last, _) = beat(&m, A, t0, ms(100), 30);
    // One beat lost: the next echo comes 200 ms later.
    let mut t = last;
    while t < last + ms(200) {
        t += ms(10);
        m.evaluate(t);
    }
    let (_, seen) = beat(&m, A, last + ms(100), ms(100), 20);
    assert!(seen.iter().all(|c| c.to != PeerState::Dead), "{seen:?}");
    assert_eq!(m.state(A), Some(PeerState::Alive));
}

#[test]
fn a_dead_peer_returns_only_after_a_stable_window_of_echoes() {
    let t0 = Instant::now();
    let m = Membership::new(config(), &[A.into()], t0);
    let (last, _) = beat(&m, A, t0, ms(100), 30);
    let dead_after = time_until(&m, A, last, ms(2000), PeerState::Dead).expect("dead");
    let back = last + dead_after + ms(1000);
    m.on_echo(A, None, None, None, back);
    m.evaluate(back);
    assert_eq!(m.state(A), Some(PeerState::Dead), "one echo is not enough");
    let (t, _) = beat(&m, A, back, ms(100), 2);
    assert_eq!(m.state(A), Some(PeerState::Dead));
    let (_, seen) = beat(&m, A, t, ms(100), 3);
    assert_eq!(m.state(A), Some(PeerState::Alive), "{seen:?}");
}

#[test]
fn a_restarted_peer_starts_a_fresh_detector() {
    let t0 = Instant::now();
    let m = Membership::new(config(), &[A.into()], t0);
    m.on_echo(A, Some(identity("a", "tokyo", 1)), None, None, t0);
    let (last, _) = beat(&m, A, t0, ms(100), 10);
    m.on_echo(
        A,
        Some(identity("a", "tokyo", 2)),
        None,
        None,
        last + ms(100),
    );
    let members = m.members(last + ms(100));
    assert_eq!(members[0].identity.as_ref().map(|i| i.incarnation), Some(2));
}

#[test]
fn minority_needs_more_than_half_of_the_cluster_unreachable() {
    let t0 = Instant::now();
    // 4 nodes: this one and A, B, C.
    let m = Membership::new(config(), &[A.into(), B.into(), C.into()], t0);
    assert!(!m.is_minority(), "nobody heard yet: not judged");
    for url in [A, B, C] {
        beat(&m, url, t0, ms(100), 5);
    }
    let last = t0 + ms(500);
    assert!(!m.is_minority());
    // A and B go silent: 2 of 4 reachable is a tie, not a minority.
    let mut t = last;
    for _ in 0..100 {
        t += ms(10);
        m.on_echo(C, None, None, None, t);
        m.evaluate(t);
    }
    assert_eq!(m.state(A), Some(PeerState::Dead));
    assert_eq!(m.up_count(), 1);
    assert!(!m.is_minority());
    // C too: 1 of 4.
    let mut t2 = t;
    for _ in 0..100 {
        t2 += ms(10);
        m.evaluate(t2);
    }
    assert_eq!(m.state(C), Some(PeerState::Dead));
    assert!(m.is_minority());
}

#[tokio::test]
async fn spill_goes_to_a_live_serving_peer_with_room_preferring_the_other_region() {
    let t0 = Instant::now();
    let m = Membership::new(config(), &[A.into(), B.into(), C.into()], t0);
    let load = |free: u64, serving: bool| NodeLoad {
        serving,
        models: vec![ModelLoad {
            name: "ppo".into(),
            live_shards: 1,
            total_shards: 1,
            free_slots: free,
            ..Default::default()
        }],
        ..Default::default()
    };
    let channel = || tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
    m.on_echo(
        A,
        Some(identity("a", "tokyo", 1)),
        Some(load(500, true)),
        None,
        t0,
    );
    m.on_echo(
        B,
        Some(identity("b", "osaka", 1)),
        Some(load(10, true)),
        None,
        t0,
    );
    m.on_echo(
        C,
        Some(identity("c", "osaka", 1)),
        Some(load(900, false)),
        None,
        t0,
    );
    for url in [A, B, C] {
        m.on_connect(url, channel());
    }
    m.evaluate(t0);
    let target = m.spill_target("ppo", "tokyo").expect("a target");
    assert_eq!(target.node, "b", "other region first; c is not serving");
    let target = m.spill_target("ppo", "osaka").expect("a target");
    assert_eq!(target.node, "a");
    assert!(m.spill_target("other-model", "tokyo").is_none());
    m.on_disconnect(B);
    assert_eq!(
        m.spill_target("ppo", "tokyo").map(|t| t.node),
        Some("a".into())
    );
}

proptest! {
    /// Over random heartbeat histories (jitter, lost beats, pauses), a peer is declared dead
    /// only after at least the stability window of silence, and a peer that stops for good
    /// after a steady stretch is declared dead within a second whatever came before.
    #[test]
    fn dead_only_after_silence_and_always_within_a_second(
        gaps in prop::collection::vec(prop_oneof![
            8 => 70u64..130,
            2 => 130u64..260,
            1 => 260u64..2000,
        ], 1..120),
    ) {
        let t0 = Instant::now();
        let m = Membership::new(config(), &[A.into()], t0);
        let mut t = t0;
        let mut last_echo = t0;
        for gap in gaps {
            let next = t + ms(gap);
            while t + ms(10) < next {
                t += ms(10);
                for change in m.evaluate(t) {
                    if change.to == PeerState::Dead {
                        prop_assert!(t - last_echo >= ms(300), "dead after {:?} of silence", t - last_echo);
                    }
                }
            }
            t = next;
            m.on_echo(A, None, None, None, t);
            last_echo = t;
            m.evaluate(t);
        }
        // A steady link (long enough to fill the detector's window), then silence for good.
        let (end, _) = beat(&m, A, t, ms(100), 200);
        let took = time_until(&m, A, end, ms(3000), PeerState::Dead);
        prop_assert!(took.is_some_and(|d| d <= ms(1000)), "detection took {took:?}");
    }
}
