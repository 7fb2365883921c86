//! This node's view of the cluster: one entry per configured peer, fed by the region links
//! and judged by a phi-accrual detector with a stability window.
//!
//! A peer moves through `joining → alive ⇄ suspect → dead → alive`:
//! - **suspect** as soon as phi crosses the threshold (a late echo), and back to **alive** on
//!   the next echo: nothing acts on a suspicion;
//! - **dead** only when it has stayed suspect for the whole stability window, so a single
//!   missed heartbeat never moves work: with 100 ms heartbeats, phi 8 and a 300 ms window a
//!   dead peer is declared about 0.5–0.7 s after its last echo;
//! - **alive again** only after echoes have kept phi below the threshold for the stability
//!   window, so a flapping link does not bounce sessions back and forth.
//!
//! The view drives spill-over (which live peer takes requests this node cannot), the
//! `fenced` health verdict (minority side of a partition) and `fudo ctl cluster`. Times are
//! passed in, so the state machine is deterministic to test.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::time::Instant;
use tonic::transport::Channel;

use super::phi_accrual::{PhiAccrual, PhiConfig};
use crate::api::proto::fudo::v1::{Member, NodeIdentity, NodeLoad};

/// How peers are judged.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipConfig {
    /// Phi above which a peer is suspected.
    pub phi_threshold: f64,
    /// Time a peer must stay suspected before it is dead, and stay heard before a dead peer
    /// is alive again.
    pub stability: Duration,
    /// The detector's tuning.
    pub phi: PhiConfig,
}

impl MembershipConfig {
    /// The settings for links with heartbeats every `heartbeat`.
    pub fn for_heartbeat(heartbeat: Duration, phi_threshold: f64, stability: Duration) -> Self {
        Self {
            phi_threshold,
            stability,
            phi: PhiConfig {
                first_interval: heartbeat,
                // Jitter below a quarter of the interval is noise, not a failure.
                min_std_deviation: (heartbeat / 4).max(Duration::from_millis(5)),
                ..PhiConfig::default()
            },
        }
    }
}

/// What this node believes about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerState {
    /// Configured but never heard.
    Joining,
    /// Heard recently.
    Alive,
    /// Late: phi over the threshold, not yet for the whole stability window.
    Suspect,
    /// Declared dead: suspect for the whole stability window.
    Dead,
}

impl PeerState {
    /// Every state, in lifecycle order.
    pub const ALL: [PeerState; 4] = [
        PeerState::Joining,
        PeerState::Alive,
        PeerState::Suspect,
        PeerState::Dead,
    ];

    /// Lower-case name, as `fudo ctl cluster` shows it.
    pub fn name(self) -> &'static str {
        match self {
            PeerState::Joining => "joining",
            PeerState::Alive => "alive",
            PeerState::Suspect => "suspect",
            PeerState::Dead => "dead",
        }
    }

    /// Whether work may be sent to a peer in this state.
    pub fn is_up(self) -> bool {
        matches!(self, PeerState::Alive | PeerState::Suspect)
    }
}

/// A state change, returned by [`Membership::evaluate`] so callers can log and count it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The peer's URL.
    pub url: String,
    /// Its node name, when known.
    pub node: String,
    /// Before.
    pub from: PeerState,
    /// After.
    pub to: PeerState,
    /// Time since the last echo when the change happened.
    pub silent_for: Duration,
}

#[derive(Debug)]
struct Peer {
    identity: Option<NodeIdentity>,
    load: Option<NodeLoad>,
    detector: PhiAccrual,
    state: PeerState,
    since: Instant,
    /// While dead: when echoes started again (reset by another silence).
    heard_since: Option<Instant>,
    rtt_ms: Option<f64>,
    connects: u64,
    deaths: u64,
    channel: Option<Channel>,
}

/// The membership table. Shared (`Arc`) by the links, the API and the health tracker.
#[derive(Debug)]
pub struct Membership {
    config: MembershipConfig,
    peers: Mutex<BTreeMap<String, Peer>>,
}

/// A peer that can take spilled requests.
#[derive(Debug, Clone)]
pub struct SpillTarget {
    /// Its node name.
    pub node: String,
    /// Its region.
    pub region: String,
    /// The link's channel (requests share the link's HTTP/2 connection).
    pub channel: Channel,
}

impl Membership {
    /// A table of `peers` (URLs), all joining, at `now`.
    pub fn new(config: MembershipConfig, peers: &[String], now: Instant) -> Self {
        let table = peers
            .iter()
            .map(|url| {
                let peer = Peer {
                    identity: None,
                    load: None,
                    detector: PhiAccrual::new(config.phi.clone()),
                    state: PeerState::Joining,
                    since: now,
                    heard_since: None,
                    rtt_ms: None,
                    connects: 0,
                    deaths: 0,
                    channel: None,
                };
                (url.clone(), peer)
            })
            .collect();
        Self {
            config,
            peers: Mutex::new(table),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of configured peers.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no peer is configured (a single-node deployment).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The link to `url` is (re)established over `channel`.
    pub fn on_connect(&self, url: &str, channel: Channel) {
        if let Some(p) = self.lock().get_mut(url) {
            p.connects += 1;
            p.channel = Some(channel);
        }
    }

    /// The link to `url` broke. The detector, not the broken stream, decides when the peer is
    /// dead: a reconnect within the stability window changes nothing.
    pub fn on_disconnect(&self, url: &str) {
        if let Some(p) = self.lock().get_mut(url) {
            p.channel = None;
        }
    }

    /// An echo from `url` arrived at `now`, `rtt` after its heartbeat was sent.
    pub fn on_echo(
        &self,
        url: &str,
        identity: Option<NodeIdentity>,
        load: Option<NodeLoad>,
        rtt: Option<Duration>,
        now: Instant,
    ) {
        let mut peers = self.lock();
        let Some(p) = peers.get_mut(url) else {
            return;
        };
        if let Some(identity) = identity {
            let restarted = p
                .identity
                .as_ref()
                .is_some_and(|old| old.incarnation != identity.incarnation);
            if restarted {
                // A new process: its heartbeat history says nothing about this one.
                p.detector = PhiAccrual::new(self.config.phi.clone());
            }
            p.identity = Some(identity);
        }
        if load.is_some() {
            p.load = load;
        }
        if let Some(rtt) = rtt {
            let ms = rtt.as_secs_f64() * 1e3;
            p.rtt_ms = Some(p.rtt_ms.map_or(ms, |old| 0.8 * old + 0.2 * ms));
        }
        if p.state == PeerState::Dead && p.heard_since.is_none() {
            // Back from the dead: the silence was a failure, not a heartbeat interval; keep it
            // out of the detector's window, or it would tolerate the next failure for as long.
            p.detector = PhiAccrual::new(self.config.phi.clone());
            p.heard_since = Some(now);
        }
        p.detector.heartbeat(now);
    }

    /// Advances every peer's state to `now`; returns the changes.
    pub fn evaluate(&self, now: Instant) -> Vec<Transition> {
        let mut peers = self.lock();
        peers
            .iter_mut()
            .filter_map(|(url, p)| self.advance(url, p, now))
            .collect()
    }

    /// Advances the state of the peer at `url` to `now` (what its link does on each tick);
    /// returns the change, if any.
    pub fn evaluate_peer(&self, url: &str, now: Instant) -> Option<Transition> {
        let mut peers = self.lock();
        let p = peers.get_mut(url)?;
        self.advance(url, p, now)
    }

    fn advance(&self, url: &str, p: &mut Peer, now: Instant) -> Option<Transition> {
        let threshold = self.config.phi_threshold;
        let stability = self.config.stability;
        let heard = p.detector.last_heartbeat().is_some();
        let late = heard && p.detector.phi(now) >= threshold;
        let next = match p.state {
            PeerState::Joining if heard => Some(PeerState::Alive),
            PeerState::Joining => None,
            PeerState::Alive if late => Some(PeerState::Suspect),
            PeerState::Alive => None,
            PeerState::Suspect if !late => Some(PeerState::Alive),
            PeerState::Suspect if now.duration_since(p.since) >= stability => Some(PeerState::Dead),
            PeerState::Suspect => None,
            PeerState::Dead if late => {
                p.heard_since = None;
                None
            }
            PeerState::Dead => p
                .heard_since
                .filter(|&h| now.duration_since(h) >= stability)
                .map(|_| PeerState::Alive),
        };
        let to = next?;
        if to == PeerState::Dead {
            p.deaths += 1;
        }
        p.heard_since = None;
        let change = Transition {
            url: url.to_owned(),
            node: p
                .identity
                .as_ref()
                .map(|i| i.node.clone())
                .unwrap_or_default(),
            from: p.state,
            to,
            silent_for: p
                .detector
                .last_heartbeat()
                .map_or(Duration::ZERO, |t| now.duration_since(t)),
        };
        p.state = to;
        p.since = now;
        Some(change)
    }

    /// The state of the peer at `url`.
    pub fn state(&self, url: &str) -> Option<PeerState> {
        self.lock().get(url).map(|p| p.state)
    }

    /// Peers that may take work (alive or merely suspect).
    pub fn up_count(&self) -> usize {
        self.lock().values().filter(|p| p.state.is_up()).count()
    }

    /// Whether this node is on the minority side: it reaches (itself included) no more than
    /// half of the cluster, and fewer than the other side could. A tie (two regions cut
    /// apart) is not a minority; there the session store's fencing decides who advances a
    /// session. A cluster that has not heard from anybody yet is not judged.
    pub fn is_minority(&self) -> bool {
        let peers = self.lock();
        let total = peers.len() + 1;
        let heard = peers.values().any(|p| p.state != PeerState::Joining);
        let up = peers.values().filter(|p| p.state.is_up()).count() + 1;
        heard && up * 2 < total
    }

    /// The live peer best placed to take a request for `model` this node cannot serve: one
    /// that is serving and has a live shard and free queue slots for the model, preferring
    /// the other region (a region short of capacity spills across), then the most free slots.
    pub fn spill_target(&self, model: &str, own_region: &str) -> Option<SpillTarget> {
        let peers = self.lock();
        peers
            .values()
            .filter(|p| p.state == PeerState::Alive)
            .filter_map(|p| {
                let identity = p.identity.as_ref()?;
                let load = p.load.as_ref()?;
                let channel = p.channel.clone()?;
                let m = load.models.iter().find(|m| m.name == model)?;
                (load.serving && m.live_shards > 0 && m.free_slots > 0).then(|| {
                    let same_region = identity.region == own_region;
                    ((same_region, u64::MAX - m.free_slots), identity, channel)
                })
            })
            .min_by_key(|(key, _, _)| *key)
            .map(|(_, identity, channel)| SpillTarget {
                node: identity.node.clone(),
                region: identity.region.clone(),
                channel,
            })
    }

    /// The table as the `Members` RPC reports it.
    pub fn members(&self, now: Instant) -> Vec<Member> {
        self.lock()
            .iter()
            .map(|(url, p)| Member {
                identity: p.identity.clone(),
                url: url.clone(),
                state: p.state.name().to_owned(),
                phi: if p.detector.last_heartbeat().is_some() {
                    p.detector.phi(now).min(1e6)
                } else {
                    0.0
                },
                rtt_ms: p.rtt_ms.unwrap_or_default(),
                last_heard_ms: p
                    .detector
                    .last_heartbeat()
                    .map_or(0, |t| duration_ms(now.duration_since(t))),
                state_ms: duration_ms(now.duration_since(p.since)),
                connects: p.connects,
                load: p.load.clone(),
                deaths: p.deaths,
            })
            .collect()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
