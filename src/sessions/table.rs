//! The session table: per-session state machines with idempotent steps.
//!
//! Locking: a short `std` mutex guards the map from session id to entry; each entry has its
//! own async mutex, held across the store load and the caller's `infer`, so steps of one
//! session are serialized while different sessions run in parallel. No global lock is held
//! across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::{
    SessionConfig, SessionError, SessionSnapshot, SessionStore, StepComputed, StepError, StepInput,
    StepOutcome, StepOutput, StepRecord, StepRequest, StoreHealth,
};

/// The table of live recurrent sessions. Cloning shares it.
#[derive(Clone)]
pub struct SessionTable {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("sessions", &self.len())
            .field("config", &self.inner.config)
            .field("store", &self.inner.store)
            .finish()
    }
}

struct Inner {
    store: SessionStore,
    config: SessionConfig,
    sessions: Mutex<HashMap<String, Arc<AsyncMutex<Slot>>>>,
}

struct Slot {
    state: SlotState,
    last_used: Instant,
}

enum SlotState {
    /// Just inserted; the store has not been consulted yet.
    Unloaded,
    /// The store has no such session (only while its first, failing or starting, step runs).
    Absent,
    Live(SessionSnapshot),
    /// Removed from the map; whoever finds it must look the session up again.
    Gone,
}

/// What a request resolves to, given the session's current snapshot.
#[derive(Debug, PartialEq)]
enum Plan {
    Replay { seq: u64, output: StepOutput },
    Step { seq: u64, fresh: bool },
}

impl SessionTable {
    /// A table over `store`. Inside a tokio runtime it also spawns a sweeper that evicts idle
    /// sessions from memory every `idle_ttl / 4` (between 100 ms and 30 s); it stops when the
    /// last handle is dropped. Outside a runtime, call [`SessionTable::evict_idle`] yourself.
    pub fn new(store: SessionStore, mut config: SessionConfig) -> Self {
        config.retained_results = config.retained_results.max(1);
        let inner = Arc::new(Inner {
            store,
            config,
            sessions: Mutex::default(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let period = (inner.config.idle_ttl / 4)
                .clamp(Duration::from_millis(100), Duration::from_secs(30));
            rt.spawn(sweeper(Arc::downgrade(&inner), period));
        }
        Self { inner }
    }

    /// Runs one step of `req.session_id`.
    ///
    /// Validates the seq; a retried seq whose result is retained returns that result
    /// (`replayed: true`) without calling `infer`; otherwise calls `infer(previous_state)`
    /// (zeros of `state_dim` for a start) and records its output and next state, written
    /// through to the store. When `infer` fails nothing changes and the same seq can be retried.
    pub async fn step<F, Fut, E>(
        &self,
        req: StepRequest,
        infer: F,
    ) -> Result<StepOutcome, StepError<E>>
    where
        F: FnOnce(Vec<f32>) -> Fut,
        Fut: Future<Output = Result<StepComputed, E>>,
    {
        self.step_with(req, |input| infer(input.state)).await
    }

    /// [`SessionTable::step`], with the closure also told which model version the session is
    /// pinned to (so that a session stays on the version it started with across deploys).
    pub async fn step_with<F, Fut, E>(
        &self,
        req: StepRequest,
        infer: F,
    ) -> Result<StepOutcome, StepError<E>>
    where
        F: FnOnce(StepInput) -> Fut,
        Fut: Future<Output = Result<StepComputed, E>>,
    {
        let (entry, mut slot) = self.acquire(&req.session_id, req.start).await?;
        let result = match self.refresh_if_behind(&req, &mut slot).await {
            Ok(()) => self.step_locked(&req, &mut slot, infer).await,
            Err(e) => Err(e.into()),
        };
        slot.last_used = Instant::now();
        if !matches!(slot.state, SlotState::Live(_)) {
            // Unknown session that did not start: do not keep a placeholder around.
            slot.state = SlotState::Gone;
            self.inner.remove_entry(&req.session_id, &entry);
        }
        result
    }

    async fn step_locked<F, Fut, E>(
        &self,
        req: &StepRequest,
        slot: &mut Slot,
        infer: F,
    ) -> Result<StepOutcome, StepError<E>>
    where
        F: FnOnce(StepInput) -> Fut,
        Fut: Future<Output = Result<StepComputed, E>>,
    {
        let id = &req.session_id;
        let current = match &mut slot.state {
            SlotState::Live(s) => Some(s),
            _ => None,
        };
        let (seq, fresh) = match plan(current.as_deref(), req)? {
            Plan::Replay { seq, output } => {
                return Ok(StepOutcome {
                    seq,
                    output,
                    replayed: true,
                    durable_watermark: self.inner.store.durable_watermark(id),
                    owner_epoch: self.inner.store.owner_epoch(id),
                });
            }
            Plan::Step { seq, fresh } => (seq, fresh),
        };
        let input = match (&current, fresh) {
            (Some(s), false) => StepInput {
                state: s.state.clone(),
                version: s.model_version.clone(),
                recent_obs: s.recent_obs.iter().cloned().collect(),
            },
            _ => StepInput {
                state: vec![0.0; req.state_dim],
                version: req.pinned_version_of_new_session().to_owned(),
                recent_obs: Vec::new(),
            },
        };
        let window = self.inner.config.replay_window;
        let computed = infer(input).await.map_err(StepError::Infer)?;
        if computed.next_state.len() != req.state_dim {
            return Err(SessionError::StateShape {
                session: id.clone(),
                expected: req.state_dim,
                got: computed.next_state.len(),
                origin: "the model returned a next state of another size than state_dim",
            }
            .into());
        }
        let record = StepRecord {
            seq,
            output: computed.output.clone(),
        };
        match current {
            Some(s) if !fresh => {
                s.seq = seq;
                s.ended = req.end;
                s.state = computed.next_state;
                if let Some(version) = computed.moved_to {
                    s.model_version = version;
                }
                if window > 0 {
                    s.recent_obs.push_back(computed.observed);
                    while s.recent_obs.len() > window {
                        s.recent_obs.pop_front();
                    }
                }
                s.results.push_back(record);
                while s.results.len() > self.inner.config.retained_results {
                    s.results.pop_front();
                }
            }
            _ => {
                slot.state = SlotState::Live(SessionSnapshot {
                    model: req.model.clone(),
                    model_version: computed
                        .moved_to
                        .unwrap_or_else(|| req.pinned_version_of_new_session().to_owned()),
                    seq,
                    ended: req.end,
                    state: computed.next_state,
                    results: VecDeque::from([record]),
                    recent_obs: if window > 0 {
                        VecDeque::from([computed.observed])
                    } else {
                        VecDeque::new()
                    },
                });
            }
        }
        let SlotState::Live(snapshot) = &slot.state else {
            unreachable!("the step just made the session live")
        };
        self.inner.store.write(id, snapshot);
        Ok(StepOutcome {
            seq,
            output: computed.output,
            replayed: false,
            durable_watermark: self.inner.store.durable_watermark(id),
            owner_epoch: self.inner.store.owner_epoch(id),
        })
    }

    /// A session that moved to another node and back finds this node's copy stale: the request
    /// is ahead of it, or names an owner epoch newer than ours. Before calling that a gap, take
    /// the session over again in the store, where the other node wrote its newer steps, and
    /// take its snapshot if it is newer.
    ///
    /// If the store cannot be asked, the step fails with the store error (retryable, so the
    /// client tries another node): answering "gap, resend from my seq" instead could ask the
    /// client for steps it has already dropped as durable.
    async fn refresh_if_behind(
        &self,
        req: &StepRequest,
        slot: &mut Slot,
    ) -> Result<(), SessionError> {
        let SlotState::Live(current) = &slot.state else {
            return Ok(());
        };
        let behind = !req.start && req.seq.is_some_and(|seq| seq > current.seq + 1);
        // The client has seen a newer owner than us: whatever we hold may be behind that
        // owner's, and answering from it would be a stale owner's answer.
        let superseded = req.min_epoch > self.inner.store.owner_epoch(&req.session_id);
        if !(behind || superseded) {
            return Ok(());
        }
        match self.inner.store.load_durable(&req.session_id).await {
            Ok(Some(stored)) if stored.seq > current.seq => {
                tracing::debug!(
                    session = %req.session_id,
                    memory_seq = current.seq,
                    store_seq = stored.seq,
                    "session copy in memory was stale; took the store's newer snapshot"
                );
                slot.state = SlotState::Live(stored);
            }
            Ok(_) => {}
            Err(source) => {
                tracing::debug!(
                    session = %req.session_id,
                    error = %source,
                    "store lookup for a stale session failed"
                );
                return Err(SessionError::Store {
                    session: req.session_id.clone(),
                    source,
                });
            }
        }
        Ok(())
    }

    /// Locks the session's entry, loading the session from the store when it is not in memory.
    async fn acquire<E>(
        &self,
        session_id: &str,
        starting: bool,
    ) -> Result<(Arc<AsyncMutex<Slot>>, OwnedMutexGuard<Slot>), StepError<E>> {
        loop {
            let entry = self.inner.entry(session_id);
            let mut slot = entry.clone().lock_owned().await;
            // Another node took the session over and our copy's writes were refused: load the
            // session again (which also takes ownership back, since the client sent it here).
            if matches!(slot.state, SlotState::Live(_)) && self.inner.store.take_fenced(session_id)
            {
                tracing::info!(
                    session = session_id,
                    "session was fenced by another owner; reloading"
                );
                slot.state = SlotState::Unloaded;
            }
            match slot.state {
                SlotState::Gone => continue,
                SlotState::Unloaded => match self.inner.store.load(session_id).await {
                    Ok(Some(snapshot)) => slot.state = SlotState::Live(snapshot),
                    Ok(None) => slot.state = SlotState::Absent,
                    // A start does not need the old session: begin from zero even while the
                    // store is unreachable, so that an outage does not stop new sessions. (A
                    // retried start re-steps from zero with the same observation, which is
                    // deterministic.)
                    Err(source) if starting => {
                        tracing::debug!(
                            session = session_id,
                            error = %source,
                            "session store unreachable; starting the session without a lookup"
                        );
                        slot.state = SlotState::Absent;
                    }
                    Err(source) => {
                        slot.state = SlotState::Gone;
                        self.inner.remove_entry(session_id, &entry);
                        return Err(SessionError::Store {
                            session: session_id.to_owned(),
                            source,
                        }
                        .into());
                    }
                },
                SlotState::Absent | SlotState::Live(_) => {}
            }
            return Ok((entry, slot));
        }
    }

    /// Sessions held in memory.
    pub fn len(&self) -> usize {
        self.inner.map().len()
    }

    /// Sessions held in memory that are pinned to `model` at `version` and have not ended (a
    /// session busy with a step counts: it may be). What keeps a retiring version loaded.
    pub fn pinned_to(&self, model: &str, version: &str) -> usize {
        let entries: Vec<_> = self.inner.map().values().cloned().collect();
        entries
            .iter()
            .filter(|entry| match entry.try_lock() {
                Ok(slot) => matches!(&slot.state, SlotState::Live(s)
                    if !s.ended && s.model == model && s.model_version == version),
                Err(_) => true,
            })
            .count()
    }

    /// Whether no session is held in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Health of the durable store.
    pub fn store_health(&self) -> StoreHealth {
        self.inner.store.health()
    }

    /// The store behind the table.
    pub fn store(&self) -> &SessionStore {
        &self.inner.store
    }

    /// The in-memory snapshot of a session (for introspection and tests).
    pub async fn snapshot(&self, session_id: &str) -> Option<SessionSnapshot> {
        let entry = self.inner.map().get(session_id).cloned()?;
        let slot = entry.lock().await;
        match &slot.state {
            SlotState::Live(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Forgets a session, in memory and in the store (waits for a step in progress).
    pub async fn remove(&self, session_id: &str) {
        let entry = self.inner.map().get(session_id).cloned();
        if let Some(entry) = entry {
            let mut slot = entry.lock().await;
            slot.state = SlotState::Gone;
            self.inner.remove_entry(session_id, &entry);
        }
        self.inner.store.delete(session_id);
    }

    /// Evicts sessions idle for at least `idle_ttl` whose latest state the store has
    /// acknowledged (they are loaded again on their next step). Returns how many were evicted.
    pub fn evict_idle(&self) -> usize {
        self.inner.evict_idle()
    }
}

impl Inner {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<AsyncMutex<Slot>>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, session_id: &str) -> Arc<AsyncMutex<Slot>> {
        let mut map = self.map();
        if let Some(entry) = map.get(session_id) {
            return entry.clone();
        }
        let entry = Arc::new(AsyncMutex::new(Slot {
            state: SlotState::Unloaded,
            last_used: Instant::now(),
        }));
        map.insert(session_id.to_owned(), entry.clone());
        entry
    }

    /// Removes `entry` from the map if it is still the one registered for `session_id`.
    fn remove_entry(&self, session_id: &str, entry: &Arc<AsyncMutex<Slot>>) {
        let mut map = self.map();
        if map.get(session_id).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(session_id);
        }
    }

    fn evict_idle(&self) -> usize {
        let ttl = self.config.idle_ttl;
        let mut map = self.map();
        let before = map.len();
        map.retain(|id, entry| {
            // A locked entry has a step in progress (or is being loaded): keep it.
            let Ok(mut slot) = entry.try_lock() else {
                return true;
            };
            let SlotState::Live(s) = &slot.state else {
                return true;
            };
            if slot.last_used.elapsed() < ttl || self.store.durable_watermark(id) < s.seq {
                return true;
            }
            slot.state = SlotState::Gone;
            self.store.release(id);
            false
        });
        before - map.len()
    }
}

async fn sweeper(inner: Weak<Inner>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let evicted = inner.evict_idle();
        if evicted > 0 {
            tracing::debug!(evicted, "session table: evicted idle sessions from memory");
        }
    }
}

/// Decides what `req` does to the session whose current snapshot is `current`.
fn plan(current: Option<&SessionSnapshot>, req: &StepRequest) -> Result<Plan, SessionError> {
    let session = || req.session_id.clone();
    let Some(s) = current else {
        if !req.start {
            return Err(SessionError::NotStarted { session: session() });
        }
        return Ok(Plan::Step {
            seq: req.seq.unwrap_or(1),
            fresh: true,
        });
    };
    let next = s.seq.saturating_add(1);
    let seq = req.seq.unwrap_or(next);
    // A request that names no version follows the session's.
    let check_version = || {
        if s.model == req.model
            && (req.model_version.is_empty() || s.model_version == req.model_version)
        {
            Ok(())
        } else {
            Err(SessionError::VersionMismatch {
                session: session(),
                pinned: format!("{}@{}", s.model, s.model_version),
                requested: format!("{}@{}", req.model, req.model_version),
            })
        }
    };
    if seq <= s.seq {
        check_version()?;
        return match s.result(seq) {
            Some(output) => Ok(Plan::Replay {
                seq,
                output: output.clone(),
            }),
            None => Err(SessionError::SeqStale {
                session: session(),
                oldest_retained: s.oldest_retained(),
                got: seq,
                next,
            }),
        };
    }
    if req.start {
        return Ok(Plan::Step { seq, fresh: true });
    }
    if s.ended {
        return Err(SessionError::Ended {
            session: session(),
            last_seq: s.seq,
        });
    }
    check_version()?;
    if seq != next {
        return Err(SessionError::SeqGap {
            session: session(),
            expected: next,
            got: seq,
        });
    }
    if s.state.len() != req.state_dim {
        return Err(SessionError::StateShape {
            session: session(),
            expected: req.state_dim,
            got: s.state.len(),
            origin: "the session's stored state vs the request's state_dim",
        });
    }
    Ok(Plan::Step { seq, fresh: false })
}

#[cfg(test)]
mod tests;
