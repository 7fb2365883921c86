//! The Redis session store: write-through with a coalescing, pipelining writer, and
//! write-behind buffering while Redis is unreachable.
//!
//! [`RedisStore::write`] never touches the network: it encodes the snapshot and puts it in a
//! buffer keyed by session id, replacing any older snapshot of that session still waiting
//! (the latest snapshot supersedes the older ones, so the buffer is bounded by the number of
//! sessions, however long Redis is away). A single writer task takes up to `max_batch` waiting
//! sessions, sends one pipeline of `SET fudo:session:{id} <snapshot>` (and `DEL` for deleted
//! sessions), and on success advances each session's durable watermark and drops the entries
//! that were not superseded meanwhile.
//!
//! On failure the store turns degraded (one `warn` per transition), keeps everything buffered,
//! drops the connection and retries with exponential backoff (`backoff_min` to `backoff_max`);
//! while degraded with nothing to write it probes with `PING`. The first successful round
//! trip clears `degraded` (one `info`). Loads read the buffer first (read-your-writes), then
//! `GET` with a short overall timeout; they only happen for sessions not in the table's memory.
//!
//! With a `redis+sentinel://` URL every (re)connect asks the sentinels for the current primary
//! and checks its `ROLE` (see `redis_conn`); since every failed round trip (a `READONLY` reply
//! from a demoted primary included) drops the connection, the writer finds the new primary
//! after a failover and flushes the buffer there, losing nothing that was buffered.
//!
//! The buffer is a map (not a channel) so that coalescing happens at enqueue time and memory
//! stays bounded by the number of sessions even when the writer cannot drain.
//!
//! **Fencing.** Each session has an owner epoch in Redis (`{key_prefix}{id}:epoch`). A node
//! that loads a session from Redis takes ownership by incrementing it (one Lua script: `INCR`
//! the epoch, `GET` the snapshot) and remembers the epoch it got; each of its writes carries
//! that epoch and a Lua script applies it unless a newer epoch holds the session. So when
//! a session moves to another node, the old owner's late writes (a frozen process waking up, a
//! partition healing) are refused instead of overwriting newer state: they are dropped, counted
//! (`fenced_total`), and the table reloads the session before it serves it again. Within one
//! epoch, writes also carry the store's write version (`{key_prefix}{id}:ver`), so a late
//! write of the same owner — sent on a connection it gave up on, arriving after a newer one
//! was acknowledged — is ignored instead of rolling the session back
//! (`tests/lease_interleavings.rs` found that interleaving).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::redis_conn::ConnSlot;
use super::redis_target::{RedisTarget, redact_url};
use super::{SessionSnapshot, StoreError, StoreHealth};

/// Tuning of a [`RedisStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisStoreOptions {
    /// Key prefix; a session's key is `{key_prefix}{session_id}`. Default `"fudo:session:"`.
    pub key_prefix: String,
    /// Limit for establishing a connection. Default 250 ms.
    pub connect_timeout: Duration,
    /// Limit for one pipeline (or command) round trip. Default 1 s.
    pub response_timeout: Duration,
    /// Overall limit for a load (connect + `GET`). Default 300 ms.
    pub load_timeout: Duration,
    /// First retry delay after a failed flush. Default 50 ms.
    pub backoff_min: Duration,
    /// Largest retry delay. Default 2 s.
    pub backoff_max: Duration,
    /// Most sessions per pipeline. Default 1024.
    pub max_batch: usize,
    /// Expiry set on every snapshot key (refreshed by each write); `None` keeps keys forever.
    /// Default `None`.
    pub key_ttl: Option<Duration>,
    /// PEM file of the CA(s) to trust for a `rediss://` URL instead of the built-in (webpki)
    /// roots; only for a single-server `rediss://` URL (see [`super::redis_tls`]). Default
    /// `None`.
    pub ca_file: Option<PathBuf>,
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        Self {
            key_prefix: "fudo:session:".into(),
            connect_timeout: Duration::from_millis(250),
            response_timeout: Duration::from_secs(1),
            load_timeout: Duration::from_millis(300),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_batch: 1024,
            key_ttl: None,
            ca_file: None,
        }
    }
}

/// Handle to the Redis store; clones share the buffer and the writer task, which stops once
/// the last handle is dropped (after one last flush attempt).
#[derive(Clone)]
pub struct RedisStore {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.handle.shared.url)
            .field("health", &self.health())
            .finish()
    }
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

struct Shared {
    /// The URL for logs and `Debug`, its password redacted.
    url: String,
    opts: RedisStoreOptions,
    conn: ConnSlot,
    pending: Mutex<Pending>,
    wake: Notify,
    acked: Mutex<HashMap<String, u64>>,
    degraded: AtomicBool,
    last_error: Mutex<Option<String>>,
    flushed_total: AtomicU64,
    closed: AtomicBool,
    /// The owner epoch this node holds per session (taken when it loaded the session).
    epochs: Mutex<HashMap<String, u64>>,
    /// Sessions whose write was refused because another node took them over.
    fenced: Mutex<HashSet<String>>,
    fenced_total: AtomicU64,
}

/// Takes ownership of a session: a new epoch, and the snapshot as it is now. The new epoch's
/// writes start a new version sequence (KEYS[3] is dropped).
const ACQUIRE: &str = "local e = redis.call('INCR', KEYS[2]) \
redis.call('DEL', KEYS[3]) \
return {e, redis.call('GET', KEYS[1])}";

/// Writes (ARGV[1] = snapshot, or empty to delete) unless a newer owner holds the session
/// (current epoch > ARGV[2]: returns 0, fenced) or the same owner already wrote something
/// newer (same epoch, stored version KEYS[3] >= ARGV[4]: returns 2, superseded — a late
/// write from a connection the owner gave up on must not roll the session back). ARGV[3] is
/// a TTL in ms (0: none). An epoch key that is missing (Redis lost its data, or the session is
/// new) or older is set to ours. Returns 1 when applied.
const WRITE: &str = "local cur = tonumber(redis.call('GET', KEYS[2]) or '0') \
local mine = tonumber(ARGV[2]) \
if cur > mine then return 0 end \
local ver = tonumber(ARGV[4]) \
if cur == mine and tonumber(redis.call('GET', KEYS[3]) or '0') >= ver then return 2 end \
if ARGV[1] == '' then redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) return 1 end \
local ttl = tonumber(ARGV[3]) \
if ttl > 0 then \
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl) \
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl) \
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ttl) \
else \
  redis.call('SET', KEYS[1], ARGV[1]) \
  if cur < mine then redis.call('SET', KEYS[2], ARGV[2]) end \
  redis.call('SET', KEYS[3], ARGV[4]) \
end \
return 1";

/// Coalesced, not yet acknowledged operations. Every key of `ops` is either in `queue`
/// (waiting) or in the writer's current batch (in flight), never both.
#[derive(Default)]
struct Pending {
    ops: HashMap<String, PendingOp>,
    queue: VecDeque<String>,
    next_version: u64,
}

#[derive(Clone)]
struct PendingOp {
    version: u64,
    seq: u64,
    /// The owner epoch the write carries.
    epoch: u64,
    /// `None`: delete the key.
    bytes: Option<Arc<[u8]>>,
}

struct BatchItem {
    id: String,
    op: PendingOp,
}

impl Pending {
    /// An in-flight item is done (written, or refused for good): drop its op unless a newer
    /// snapshot superseded it while in flight, which is queued for a later round instead.
    fn settle(&mut self, item: BatchItem) {
        if self
            .ops
            .get(&item.id)
            .is_some_and(|op| op.version == item.op.version)
        {
            self.ops.remove(&item.id);
        } else {
            self.queue.push_back(item.id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisStore {
    /// Creates the store and its writer task (must run inside a tokio runtime). `url` is a
    /// redis crate URL (`rediss://` for TLS) or a `redis+sentinel://` URL (see
    /// [`RedisTarget`]). Fails only on an invalid URL or an unusable `opts.ca_file`; an
    /// unreachable server (or no reachable primary, or a failed TLS handshake or `AUTH`)
    /// leaves the store degraded until it connects. The password in `url` never reaches a log
    /// line or an error (see [`redact_url`]).
    pub async fn connect(url: &str, opts: RedisStoreOptions) -> Result<Self, StoreError> {
        let target = RedisTarget::parse(url)?;
        let shared = Arc::new(Shared {
            url: redact_url(url),
            conn: ConnSlot::new(&target, &opts)?,
            opts,
            pending: Mutex::default(),
            wake: Notify::new(),
            acked: Mutex::default(),
            degraded: AtomicBool::new(false),
            last_error: Mutex::new(None),
            flushed_total: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            epochs: Mutex::default(),
            fenced: Mutex::default(),
            fenced_total: AtomicU64::new(0),
        });
        if let Err(e) = shared.conn.get().await {
            shared.mark_degraded(&e);
        }
        tokio::spawn(writer(shared.clone()));
        Ok(Self {
            handle: Arc::new(Handle { shared }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Enqueues the latest snapshot of `session_id` (see the module docs).
    pub fn write(&self, session_id: &str, snapshot: &SessionSnapshot) {
        let bytes: Arc<[u8]> = snapshot.encode().into();
        self.shared().enqueue(session_id, snapshot.seq, Some(bytes));
    }

    /// Enqueues the deletion of `session_id`.
    pub fn delete(&self, session_id: &str) {
        self.shared().enqueue(session_id, 0, None);
    }

    /// The buffered snapshot if one waits, else the one in Redis.
    pub async fn load(&self, session_id: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        let waiting = lock(&self.shared().pending)
            .ops
            .get(session_id)
            .map(|op| op.bytes.clone());
        if let Some(bytes) = waiting {
            return bytes.map(|b| SessionSnapshot::decode(&b)).transpose();
        }
        self.acquire(session_id).await
    }

    /// Takes ownership of `session_id` in Redis (a new epoch) and returns the snapshot there,
    /// ignoring anything this node still buffers: for a node that learned it is behind, so
    /// that another owner has written newer state.
    pub async fn acquire(&self, session_id: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        let s = self.shared();
        let key = s.key(session_id);
        let epoch_key = s.epoch_key(session_id);
        let version_key = s.version_key(session_id);
        let get = async {
            let (generation, mut conn) = s.conn.get().await?;
            let res: redis::RedisResult<(u64, Option<Vec<u8>>)> = redis::cmd("EVAL")
                .arg(ACQUIRE)
                .arg(3)
                .arg(&key)
                .arg(&epoch_key)
                .arg(&version_key)
                .query_async(&mut conn)
                .await;
            if res.is_err() {
                s.conn.invalidate(generation).await;
            }
            Ok::<_, StoreError>(res?)
        };
        let res = match tokio::time::timeout(s.opts.load_timeout, get).await {
            Ok(res) => res,
            Err(_) => Err(StoreError::Timeout {
                op: "redis load",
                after: s.opts.load_timeout,
            }),
        };
        let (epoch, bytes) = res.inspect_err(|e| s.mark_degraded(e))?;
        lock(&s.epochs).insert(session_id.to_owned(), epoch);
        lock(&s.fenced).remove(session_id);
        let Some(bytes) = bytes else { return Ok(None) };
        let snapshot = SessionSnapshot::decode(&bytes)?;
        let mut acked = lock(&s.acked);
        let mark = acked.entry(session_id.to_owned()).or_default();
        *mark = (*mark).max(snapshot.seq);
        Ok(Some(snapshot))
    }

    /// Whether a write of `session_id` was refused since the last call because another node
    /// took the session over (clears the flag). The table then reloads the session.
    pub fn take_fenced(&self, session_id: &str) -> bool {
        lock(&self.shared().fenced).remove(session_id)
    }

    /// The owner epoch this node took when it loaded `session_id` (0: not loaded here).
    pub fn owner_epoch(&self, session_id: &str) -> u64 {
        self.shared().epoch_of(session_id)
    }

    /// Highest acknowledged seq of `session_id`.
    pub fn durable_watermark(&self, session_id: &str) -> u64 {
        lock(&self.shared().acked)
            .get(session_id)
            .copied()
            .unwrap_or(0)
    }

    /// Drops the watermark of a session the table evicted (unless a write still waits).
    pub fn release(&self, session_id: &str) {
        let s = self.shared();
        let pending = lock(&s.pending);
        if !pending.ops.contains_key(session_id) {
            lock(&s.acked).remove(session_id);
            lock(&s.epochs).remove(session_id);
        }
    }

    /// Current health.
    pub fn health(&self) -> StoreHealth {
        let s = self.shared();
        StoreHealth {
            backend: "redis",
            degraded: s.degraded.load(Ordering::Acquire),
            buffered_writes: lock(&s.pending).ops.len(),
            last_error: lock(&s.last_error).clone(),
            flushed_total: s.flushed_total.load(Ordering::Relaxed),
            fenced_total: s.fenced_total.load(Ordering::Relaxed),
        }
    }

    /// Waits until nothing is buffered, or fails after `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if lock(&self.shared().pending).ops.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Timeout {
                    op: "redis flush",
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Shared {
    fn key(&self, session_id: &str) -> String {
        format!("{}{}", self.opts.key_prefix, session_id)
    }

    fn epoch_key(&self, session_id: &str) -> String {
        format!("{}{}:epoch", self.opts.key_prefix, session_id)
    }

    /// The version of the latest write under the current epoch (versions grow per store).
    fn version_key(&self, session_id: &str) -> String {
        format!("{}{}:ver", self.opts.key_prefix, session_id)
    }

    /// The owner epoch this store holds for `session_id` (0: none), which its writes carry.
    fn epoch_of(&self, session_id: &str) -> u64 {
        lock(&self.epochs).get(session_id).copied().unwrap_or(0)
    }

    fn enqueue(&self, session_id: &str, seq: u64, bytes: Option<Arc<[u8]>>) {
        {
            let epoch = self.epoch_of(session_id);
            let mut p = lock(&self.pending);
            p.next_version += 1;
            let op = PendingOp {
                version: p.next_version,
                seq,
                epoch,
                bytes,
            };
            if p.ops.insert(session_id.to_owned(), op).is_none() {
                p.queue.push_back(session_id.to_owned());
            }
        }
        self.wake.notify_one();
    }

    fn take_batch(&self) -> Vec<BatchItem> {
        let mut p = lock(&self.pending);
        let n = p.queue.len().min(self.opts.max_batch.max(1));
        let ids: Vec<String> = p.queue.drain(..n).collect();
        ids.into_iter()
            .map(|id| {
                let op = p.ops[&id].clone();
                BatchItem { id, op }
            })
            .collect()
    }

    /// Sends `batch` as one pipeline of fenced writes (`PING` when empty); returns, per item,
    /// whether Redis applied it or already holds a newer write of ours (false: fenced by a
    /// newer owner).
    async fn send(&self, batch: &[BatchItem]) -> Result<Vec<bool>, StoreError> {
        let mut pipe = redis::pipe();
        if batch.is_empty() {
            pipe.cmd("PING").ignore();
        }
        let ttl = self.opts.key_ttl.map_or(0, |t| t.as_millis().max(1) as u64);
        for item in batch {
            let bytes: &[u8] = item.op.bytes.as_deref().unwrap_or_default();
            pipe.cmd("EVAL")
                .arg(WRITE)
                .arg(3)
                .arg(self.key(&item.id))
                .arg(self.epoch_key(&item.id))
                .arg(self.version_key(&item.id))
                .arg(bytes)
                .arg(item.op.epoch)
                .arg(ttl)
                .arg(item.op.version);
        }
        let (generation, mut conn) = self.conn.get().await?;
        let res = match tokio::time::timeout(
            self.opts.response_timeout,
            pipe.query_async::<Vec<i64>>(&mut conn),
        )
        .await
        {
            Ok(res) => res.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout {
                op: "redis pipeline",
                after: self.opts.response_timeout,
            }),
        };
        if res.is_err() {
            self.conn.invalidate(generation).await;
        }
        // 1: applied; 2: superseded by this owner's own newer write (nothing to do); 0: fenced.
        Ok(res?.into_iter().map(|applied| applied != 0).collect())
    }

    fn on_success(&self, batch: Vec<BatchItem>, applied: &[bool]) {
        let mut kept = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        for (i, item) in batch.into_iter().enumerate() {
            if applied.get(i).copied().unwrap_or(true) {
                kept.push(item);
            } else {
                refused.push(item);
            }
        }
        self.on_fenced(refused);
        let batch = kept;
        {
            let mut acked = lock(&self.acked);
            for item in &batch {
                if item.op.bytes.is_some() {
                    let mark = acked.entry(item.id.clone()).or_default();
                    *mark = (*mark).max(item.op.seq);
                } else {
                    acked.remove(&item.id);
                }
            }
        }
        let flushed = batch.len() as u64;
        {
            let mut p = lock(&self.pending);
            for item in batch {
                p.settle(item);
            }
        }
        self.flushed_total.fetch_add(flushed, Ordering::Relaxed);
        if self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!(
                url = %self.url,
                buffered = lock(&self.pending).ops.len(),
                "session store: redis reachable again; flushing buffered session snapshots"
            );
        }
    }

    /// Writes another node's newer epoch refused: drop them (the other node's state is the
    /// truth now) and flag the sessions so the table reloads them before serving them again.
    fn on_fenced(&self, refused: Vec<BatchItem>) {
        if refused.is_empty() {
            return;
        }
        let mut p = lock(&self.pending);
        let mut fenced = lock(&self.fenced);
        for item in refused {
            tracing::warn!(
                session = %item.id,
                seq = item.op.seq,
                epoch = item.op.epoch,
                "session store: write refused, another node owns the session now (fenced)"
            );
            self.fenced_total.fetch_add(1, Ordering::Relaxed);
            fenced.insert(item.id.clone());
            // A newer write (perhaps under a newly acquired epoch) stays queued.
            p.settle(item);
        }
    }

    fn on_failure(&self, batch: Vec<BatchItem>, err: &StoreError) {
        {
            let mut p = lock(&self.pending);
            for item in batch.into_iter().rev() {
                p.queue.push_front(item.id);
            }
        }
        self.mark_degraded(err);
    }

    fn mark_degraded(&self, err: &StoreError) {
        *lock(&self.last_error) = Some(err.to_string());
        if !self.degraded.swap(true, Ordering::AcqRel) {
            // Wake the writer so that it probes even when nothing is waiting to be written.
            self.wake.notify_one();
            tracing::warn!(
                url = %self.url,
                error = %err,
                buffered = lock(&self.pending).ops.len(),
                "session store: redis unreachable; durability degraded, buffering session \
                 snapshots and retrying"
            );
        }
    }
}

async fn writer(shared: Arc<Shared>) {
    let mut backoff = shared.opts.backoff_min;
    loop {
        let closed = shared.closed.load(Ordering::Acquire);
        let batch = shared.take_batch();
        if batch.is_empty() && (closed || !shared.degraded.load(Ordering::Acquire)) {
            if closed {
                return;
            }
            shared.wake.notified().await;
            continue;
        }
        match shared.send(&batch).await {
            Ok(applied) => {
                shared.on_success(batch, &applied);
                backoff = shared.opts.backoff_min;
            }
            Err(err) => {
                shared.on_failure(batch, &err);
                if closed {
                    tracing::warn!(
                        url = %shared.url,
                        lost = lock(&shared.pending).ops.len(),
                        "session store closed while redis is unreachable; buffered snapshots \
                         were not made durable"
                    );
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(shared.opts.backoff_max);
            }
        }
    }
}
