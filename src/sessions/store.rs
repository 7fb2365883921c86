//! The durable store behind the session table: an enum over the in-process memory store and
//! the Redis write-through store (enum dispatch: no trait objects, no boxing on the hot path).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::redis_store::{RedisStore, RedisStoreOptions};
use super::{SessionSnapshot, StoreError};

/// Where session snapshots are made durable.
#[derive(Clone, Debug)]
pub enum SessionStore {
    /// In-process map; every write is acknowledged immediately. Sessions survive a
    /// [`super::SessionTable`] being rebuilt (share the store) but not the process.
    Memory(MemoryStore),
    /// Redis, written through by a background writer that pipelines coalesced snapshots and
    /// buffers them while Redis is unreachable.
    Redis(RedisStore),
}

/// A snapshot of a store's health, for metrics, probes and the operator console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreHealth {
    /// `"memory"` or `"redis"`.
    pub backend: &'static str,
    /// The store cannot currently make writes durable (they are buffered).
    pub degraded: bool,
    /// Sessions whose latest snapshot is not yet acknowledged by the store.
    pub buffered_writes: usize,
    /// The most recent store error (kept after recovery, for operators).
    pub last_error: Option<String>,
    /// Snapshot writes and deletes acknowledged since start.
    pub flushed_total: u64,
    /// Writes refused because another node had taken the session over (fencing).
    pub fenced_total: u64,
}

impl SessionStore {
    /// A new, empty in-process store.
    pub fn memory() -> Self {
        SessionStore::Memory(MemoryStore::default())
    }

    /// A Redis store for `url`: `redis://host:port/db`, `rediss://[user]:password@host:port/db`
    /// (TLS; `opts.ca_file` trusts a private CA), or
    /// `redis+sentinel://host1:port1,host2:port2/<master-name>[/<db>]` to follow the primary that
    /// Redis Sentinel names (see [`super::RedisTarget`]). Fails only on an invalid URL or CA
    /// file: when Redis is unreachable the store starts degraded and connects in the background.
    pub async fn redis(url: &str, opts: RedisStoreOptions) -> Result<Self, StoreError> {
        Ok(SessionStore::Redis(RedisStore::connect(url, opts).await?))
    }

    /// The latest snapshot of `session_id` (including writes not yet flushed), or `None`.
    pub async fn load(&self, session_id: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        match self {
            SessionStore::Memory(m) => m.load(session_id),
            SessionStore::Redis(r) => r.load(session_id).await,
        }
    }

    /// The snapshot the durable store itself holds, ignoring this node's unflushed writes
    /// (for a node that is behind: another owner wrote newer state). On Redis this takes
    /// ownership (a new epoch).
    pub async fn load_durable(
        &self,
        session_id: &str,
    ) -> Result<Option<SessionSnapshot>, StoreError> {
        match self {
            SessionStore::Memory(m) => m.load(session_id),
            SessionStore::Redis(r) => r.acquire(session_id).await,
        }
    }

    /// Records `snapshot` as the latest state of `session_id`. Never blocks on I/O: the Redis
    /// store enqueues it, superseding any older snapshot of the session not yet flushed.
    pub fn write(&self, session_id: &str, snapshot: &SessionSnapshot) {
        match self {
            SessionStore::Memory(m) => m.write(session_id, snapshot),
            SessionStore::Redis(r) => r.write(session_id, snapshot),
        }
    }

    /// Removes `session_id` (enqueued like a write on Redis).
    pub fn delete(&self, session_id: &str) {
        match self {
            SessionStore::Memory(m) => m.delete(session_id),
            SessionStore::Redis(r) => r.delete(session_id),
        }
    }

    /// Highest seq of `session_id` whose snapshot the store has acknowledged (0: none known).
    pub fn durable_watermark(&self, session_id: &str) -> u64 {
        match self {
            SessionStore::Memory(m) => m.durable_watermark(session_id),
            SessionStore::Redis(r) => r.durable_watermark(session_id),
        }
    }

    /// The owner epoch (lease fencing token) this node holds for `session_id`; 0 when none
    /// (the in-process store has no leases).
    pub fn owner_epoch(&self, session_id: &str) -> u64 {
        match self {
            SessionStore::Memory(_) => 0,
            SessionStore::Redis(r) => r.owner_epoch(session_id),
        }
    }

    /// Tells the store the table dropped `session_id` from memory, so that per-session
    /// bookkeeping (the Redis watermark) can be released. The data stays durable.
    pub fn release(&self, session_id: &str) {
        match self {
            SessionStore::Memory(_) => {}
            SessionStore::Redis(r) => r.release(session_id),
        }
    }

    /// Whether a write of `session_id` was refused since the last call because another node
    /// took the session over (Redis fencing; never for the in-process store). Clears the flag.
    pub fn take_fenced(&self, session_id: &str) -> bool {
        match self {
            SessionStore::Memory(_) => false,
            SessionStore::Redis(r) => r.take_fenced(session_id),
        }
    }

    /// Current health.
    pub fn health(&self) -> StoreHealth {
        match self {
            SessionStore::Memory(m) => m.health(),
            SessionStore::Redis(r) => r.health(),
        }
    }

    /// Waits until every buffered write is acknowledged, or `timeout` passes (for graceful
    /// shutdown and tests).
    pub async fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        match self {
            SessionStore::Memory(_) => Ok(()),
            SessionStore::Redis(r) => r.flush(timeout).await,
        }
    }
}

/// The in-process store: encoded snapshots in a map (the same encoding Redis gets, so the
/// codec is exercised everywhere). Cloning shares the map.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    sessions: HashMap<String, (u64, Vec<u8>)>,
    writes: u64,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self, session_id: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        self.lock()
            .sessions
            .get(session_id)
            .map(|(_, bytes)| SessionSnapshot::decode(bytes))
            .transpose()
    }

    fn write(&self, session_id: &str, snapshot: &SessionSnapshot) {
        let bytes = snapshot.encode();
        let mut inner = self.lock();
        inner
            .sessions
            .insert(session_id.to_owned(), (snapshot.seq, bytes));
        inner.writes += 1;
    }

    fn delete(&self, session_id: &str) {
        let mut inner = self.lock();
        inner.sessions.remove(session_id);
        inner.writes += 1;
    }

    fn durable_watermark(&self, session_id: &str) -> u64 {
        self.lock()
            .sessions
            .get(session_id)
            .map_or(0, |(seq, _)| *seq)
    }

    fn health(&self) -> StoreHealth {
        StoreHealth {
            backend: "memory",
            degraded: false,
            buffered_writes: 0,
            last_error: None,
            flushed_total: self.lock().writes,
            fenced_total: 0,
        }
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
