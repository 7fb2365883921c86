//! Where a recurrent session goes when it has no node or must leave its node: the same
//! region first (a session moves to the other region only when its own has no live node),
//! then the node with the highest rendezvous weight for the session. Rendezvous hashing
//! spreads a lost node's sessions evenly over the survivors, moves only those sessions, and
//! sends every retry of a session to the same survivor.

/// A session looking for a node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The region of the node the session lived on, if any.
    pub home_region: Option<&'a str>,
}

/// Highest-random-weight (rendezvous) hash of a session on an endpoint: FNV-1a over both,
/// stable across processes and releases (unlike `std`'s randomly seeded hasher).
pub(crate) fn rendezvous_weight(session_id: &str, endpoint: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session_id.bytes().chain([0xff]).chain(endpoint.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Finish with a mix so that endpoints differing only in their last byte spread well.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::rendezvous_weight;

    fn owner<'a>(session: &str, nodes: &[&'a str]) -> &'a str {
        nodes
            .iter()
            .copied()
            .max_by_key(|n| rendezvous_weight(session, n))
            .expect("nodes")
    }

    #[test]
    fn sessions_spread_evenly_and_a_lost_node_moves_only_its_own() {
        let all = [
            "http://10.0.0.1:8001",
            "http://10.0.0.2:8001",
            "http://10.0.0.3:8001",
        ];
        let survivors = [all[0], all[2]];
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut moved_to: HashMap<&str, usize> = HashMap::new();
        for i in 0..3000 {
            let s = format!("session-{i}");
            let before = owner(&s, &all);
            *counts.entry(before).or_default() += 1;
            let after = owner(&s, &survivors);
            if before == all[1] {
                *moved_to.entry(after).or_default() += 1;
            } else {
                assert_eq!(before, after, "{s} moved although its node lives");
            }
        }
        for n in all {
            let c = counts[n];
            assert!((850..=1150).contains(&c), "{n}: {c} of 3000");
        }
        let lost = counts[all[1]];
        for n in survivors {
            let c = moved_to[n];
            assert!(c * 3 >= lost, "{n} took only {c} of {lost} moved sessions");
        }
    }
}
