//! One model name on a node: every version loaded for it, and the routing rule that picks the
//! version each request runs on. Deploys change the rule (add a green version, send it a canary
//! share, mirror traffic to it, make it live, retire the old one); requests read the rule once,
//! so a switch is atomic: every request runs wholly on the version it picked, and a version is
//! only retired after the requests that picked it are done.
//!
//! - A stateless request runs on the live version, or on the canary with the canary's share.
//! - A new session starts on the canary if its id hashes into the canary's share (the same
//!   answer on every node and on every retry), otherwise on the live version.
//! - A session that exists stays on the version it started with while that version is loaded.
//!   When it is gone (rolled back or retired), the session continues on the live version with
//!   its recurrent state carried over, and the step is counted as a migrated one.
//! - A request that names a version runs on exactly that version, or fails with NOT_FOUND.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use super::ModelHost;

/// A share of traffic in thousandths (0..=1000).
pub type Permille = u32;

/// The routing rule of one model.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Loaded versions.
    pub hosts: BTreeMap<String, Arc<ModelHost>>,
    /// The version that answers by default.
    pub live: String,
    /// A version taking a share of stateless requests and new sessions.
    pub canary: Option<(String, Permille)>,
    /// A version receiving a mirrored copy of a share of live traffic (stateless calls drawn
    /// at random, sessions by id with all their steps), never answering.
    pub shadow: Option<(String, Permille)>,
    /// Sessions pinned to other versions move to the live one on their next step, re-warmed
    /// by replaying their recent observations (a deploy that migrates sessions sets it).
    pub migrate: bool,
}

/// The version a request runs on, and why.
#[derive(Debug, Clone)]
pub struct Pick {
    /// The host to run on.
    pub host: Arc<ModelHost>,
    /// A session continues on another version than the one it started on (that one is gone).
    pub migrated_from: Option<String>,
}

impl Routing {
    /// The live version's host.
    pub fn live_host(&self) -> &Arc<ModelHost> {
        // Every mutation keeps `live` among `hosts` (see `ServedModel`).
        &self.hosts[&self.live]
    }

    fn canary_host(&self, share: impl FnOnce(Permille) -> bool) -> Option<&Arc<ModelHost>> {
        let (version, permille) = self.canary.as_ref()?;
        share(*permille).then(|| self.hosts.get(version)).flatten()
    }

    /// The host for a stateless request; `explicit` is the version the request named ("" for
    /// none) and `draw` a uniform number in 0..1000.
    pub fn for_stateless(&self, explicit: &str, draw: Permille) -> Option<Arc<ModelHost>> {
        if !explicit.is_empty() {
            return self.hosts.get(explicit).cloned();
        }
        Some(
            self.canary_host(|p| draw < p)
                .unwrap_or_else(|| self.live_host())
                .clone(),
        )
    }

    /// The host a new session starts on.
    pub fn for_new_session(&self, explicit: &str, session_id: &str) -> Option<Arc<ModelHost>> {
        self.for_stateless(explicit, session_bucket(session_id))
    }

    /// The host for the next step of a session that started on `pinned`.
    pub fn for_session(&self, pinned: &str) -> Pick {
        match self.hosts.get(pinned) {
            Some(host) => Pick {
                host: host.clone(),
                migrated_from: None,
            },
            None => Pick {
                host: self.live_host().clone(),
                migrated_from: Some(pinned.to_owned()),
            },
        }
    }

    /// The host that receives a mirrored copy of a request `answered` by a version, if any:
    /// never that version itself, and only when `draw` (0..1000: random for a stateless
    /// call, the session's bucket for a session step) falls in the shadow's share.
    pub fn shadow_host(&self, answered: &str, draw: Permille) -> Option<&Arc<ModelHost>> {
        self.shadow
            .as_ref()
            .filter(|(v, share)| v.as_str() != answered && draw < *share)
            .and_then(|(v, _)| self.hosts.get(v))
    }
}

/// The stable bucket (0..1000) of a session id, so that the canary decision for a session is
/// the same on every node and every retry (FNV-1a; no need for a keyed hash here).
pub fn session_bucket(session_id: &str) -> Permille {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 1000) as Permille
}

/// Why a routing change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The version is not loaded on this node.
    #[error("version {0} is not loaded")]
    NotLoaded(String),
    /// The version is already loaded.
    #[error("version {0} is already loaded")]
    AlreadyLoaded(String),
    /// The live version cannot be unloaded.
    #[error("version {0} is live; make another version live first")]
    Live(String),
}

/// Most sessions a shadow keeps its own state lineage for; beyond it new sessions are not
/// mirrored until the shadow is restarted.
pub const MAX_SHADOW_SESSIONS: usize = 100_000;

/// One model name and its versions.
#[derive(Debug)]
pub struct ServedModel {
    /// Model name.
    pub name: String,
    routing: RwLock<Arc<Routing>>,
    /// The shadow's own recurrent state per session (see `api::mirror`).
    shadow_states: Mutex<HashMap<String, Vec<f32>>>,
}

impl ServedModel {
    /// A model serving `host` as its live version.
    pub fn new(host: Arc<ModelHost>) -> Self {
        Self {
            name: host.name.clone(),
            routing: RwLock::new(Arc::new(Routing {
                live: host.version.clone(),
                hosts: BTreeMap::from([(host.version.clone(), host)]),
                canary: None,
                shadow: None,
                migrate: false,
            })),
            shadow_states: Mutex::default(),
        }
    }

    /// The shadow's state for `session`, if its lineage has started.
    pub fn shadow_state(&self, session: &str) -> Option<Vec<f32>> {
        self.shadow_states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session)
            .cloned()
    }

    /// Records the shadow's next state for `session` (dropped when the lineage table is full).
    pub fn set_shadow_state(&self, session: &str, state: Vec<f32>) {
        let mut states = self
            .shadow_states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if states.len() < MAX_SHADOW_SESSIONS || states.contains_key(session) {
            states.insert(session.to_owned(), state);
        }
    }

    /// The current rule (a snapshot: later changes do not affect it).
    pub fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The live version's host.
    pub fn live(&self) -> Arc<ModelHost> {
        self.routing().live_host().clone()
    }

    /// Every loaded version's host.
    pub fn hosts(&self) -> Vec<Arc<ModelHost>> {
        self.routing().hosts.values().cloned().collect()
    }

    fn update(
        &self,
        change: impl FnOnce(&mut Routing) -> Result<(), RoutingError>,
    ) -> Result<(), RoutingError> {
        let mut guard = self.routing.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = Routing::clone(&guard);
        change(&mut next)?;
        *guard = Arc::new(next);
        Ok(())
    }

    /// Adds a loaded version (it takes no traffic until a rule sends it some).
    pub fn add(&self, host: Arc<ModelHost>) -> Result<(), RoutingError> {
        self.update(|r| {
            if r.hosts.contains_key(&host.version) {
                return Err(RoutingError::AlreadyLoaded(host.version.clone()));
            }
            r.hosts.insert(host.version.clone(), host);
            Ok(())
        })
    }

    /// Makes `version` live and clears any canary, shadow or migration rule.
    pub fn set_live(&self, version: &str) -> Result<(), RoutingError> {
        self.update(|r| {
            if !r.hosts.contains_key(version) {
                return Err(RoutingError::NotLoaded(version.to_owned()));
            }
            r.live = version.to_owned();
            r.canary = None;
            r.shadow = None;
            r.migrate = false;
            Ok(())
        })
    }

    /// Moves every session to the live version on its next step (or stops doing so).
    pub fn set_migrate(&self, migrate: bool) -> Result<(), RoutingError> {
        self.update(|r| {
            r.migrate = migrate;
            Ok(())
        })
    }

    /// Sends `permille` of new traffic to `version` (`None` clears the canary).
    pub fn set_canary(&self, canary: Option<(&str, Permille)>) -> Result<(), RoutingError> {
        self.update(|r| {
            if let Some((v, _)) = canary
                && !r.hosts.contains_key(v)
            {
                return Err(RoutingError::NotLoaded(v.to_owned()));
            }
            r.canary = canary.map(|(v, p)| (v.to_owned(), p.min(1000)));
            Ok(())
        })
    }

    /// Mirrors `permille` of live traffic to a version (`None` stops mirroring).
    pub fn set_shadow(&self, shadow: Option<(&str, Permille)>) -> Result<(), RoutingError> {
        self.update(|r| {
            if let Some((v, _)) = shadow
                && !r.hosts.contains_key(v)
            {
                return Err(RoutingError::NotLoaded(v.to_owned()));
            }
            r.shadow = shadow.map(|(v, p)| (v.to_owned(), p.min(1000)));
            Ok(())
        })?;
        // A new shadow starts new lineages.
        self.shadow_states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }

    /// Removes `version` from routing (and any rule naming it); returns its host so the caller
    /// can stop it once the requests that picked it are done.
    pub fn remove(&self, version: &str) -> Result<Arc<ModelHost>, RoutingError> {
        let mut removed = None;
        self.update(|r| {
            if r.live == version {
                return Err(RoutingError::Live(version.to_owned()));
            }
            removed = Some(
                r.hosts
                    .remove(version)
                    .ok_or_else(|| RoutingError::NotLoaded(version.to_owned()))?,
            );
            if r.canary.as_ref().is_some_and(|(v, _)| v == version) {
                r.canary = None;
            }
            if r.shadow.as_ref().is_some_and(|(v, _)| v == version) {
                r.shadow = None;
            }
            Ok(())
        })?;
        removed.ok_or_else(|| RoutingError::NotLoaded(version.to_owned()))
    }
}

#[cfg(test)]
mod tests;
