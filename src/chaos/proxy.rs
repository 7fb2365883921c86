//! A fault-injecting TCP proxy for the chaos runner.
//!
//! The kernels this runs on have no `netem` qdisc, so latency, jitter, stalls and
//! connection cuts between the load generator and a server node are produced by
//! placing this proxy in the path: the client connects to
//! [`FaultProxy::local_addr`] and the proxy connects to the upstream address.
//!
//! The proxy is a transparent byte pump (the traffic is HTTP/2, so it never parses
//! anything) with `TCP_NODELAY` on both sides. Each direction of a connection is a
//! reader and a writer joined by a FIFO queue of timestamped chunks: a chunk read
//! at `t` is written at `t + delay`, while reading continues, so added latency does
//! not cap throughput. The queue holds at most [`MAX_QUEUED_BYTES`] per direction;
//! once full the reader waits, which pushes back on the sender through TCP flow
//! control. Because one writer drains the queue in order, jitter never reorders
//! bytes: a chunk whose delay is shorter than its predecessor's simply goes out
//! right after it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::debug;

#[cfg(test)]
mod tests;

/// Most bytes queued (read but not yet written) per direction of one connection.
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// Size of one read from a socket, and so the largest chunk in a queue.
const READ_CHUNK: usize = 64 * 1024;

/// Errors starting a [`FaultProxy`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listen socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The bound listener's address could not be read.
    #[error("cannot read the proxy's local address: {0}")]
    LocalAddr(#[source] io::Error),
}

/// Counters of a proxy since it started; see [`ProxyControl::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Client connections accepted, including refused ones.
    pub connections_accepted: u64,
    /// Connections being proxied now.
    pub connections_active: u64,
    /// Connections closed at once because refusing was on.
    pub connections_refused: u64,
    /// Connections closed abruptly by [`ProxyControl::cut`] or [`ProxyControl::refuse`].
    pub connections_cut: u64,
    /// Bytes written to the upstream (client to upstream).
    pub bytes_to_upstream: u64,
    /// Bytes written to the client (upstream to client).
    pub bytes_to_client: u64,
    /// Chunks held back by a non-zero latency before being written.
    pub chunks_delayed: u64,
}

/// State shared by the accept task, the connection tasks and every [`ProxyControl`].
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    latency_us: AtomicU64,
    jitter_us: AtomicU64,
    refuse: AtomicBool,
    /// `true` while stalled; writers wait for it to turn `false`.
    stall: watch::Sender<bool>,
    /// Bumped by every cut; each connection closes when it changes.
    cut_generation: watch::Sender<u64>,
    accepted: AtomicU64,
    active: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
    bytes_to_upstream: AtomicU64,
    bytes_to_client: AtomicU64,
    chunks_delayed: AtomicU64,
}

impl Shared {
    /// The delay for a chunk read now: latency plus a uniform jitter in
    /// `[-jitter, +jitter]`, never below zero.
    fn chunk_delay(&self) -> Duration {
        let latency = self.latency_us.load(Ordering::Relaxed);
        let jitter = self.jitter_us.load(Ordering::Relaxed);
        let us = if jitter == 0 {
            latency
        } else {
            let offset = rand::rng().random_range(0..=2 * jitter);
            (latency + offset).saturating_sub(jitter)
        };
        Duration::from_micros(us)
    }
}

/// A running fault-injecting proxy.
///
/// It owns the accept task and, through it, every connection task; dropping it
/// stops accepting and closes every proxied connection.
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    control: ProxyControl,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Binds `listen` (port 0 picks a free port) and starts proxying every accepted
    /// connection to `upstream`. No fault is active at first.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(ProxyError::LocalAddr)?;
        let shared = Arc::new(Shared {
            upstream,
            latency_us: AtomicU64::new(0),
            jitter_us: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            stall: watch::Sender::new(false),
            cut_generation: watch::Sender::new(0),
            accepted: AtomicU64::new(0),
            active: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            bytes_to_upstream: AtomicU64::new(0),
            bytes_to_client: AtomicU64::new(0),
            chunks_delayed: AtomicU64::new(0),
        });
        debug!(%local_addr, %upstream, "fault proxy listening");
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            local_addr,
            control: ProxyControl { shared },
            accept_task,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that changes the faults of this proxy and reads its counters.
    pub fn control(&self) -> ProxyControl {
        self.control.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connection tasks live in a JoinSet owned by the accept task, so
        // aborting it aborts them too.
        self.accept_task.abort();
    }
}

/// A cheap, cloneable handle to change a [`FaultProxy`]'s faults.
///
/// Changes apply at once to existing and new connections. A handle that outlives
/// its proxy does nothing harmful: its changes simply have no connection to act on.
#[derive(Debug, Clone)]
pub struct ProxyControl {
    shared: Arc<Shared>,
}

impl ProxyControl {
    /// Adds `latency` (one way, in each direction) to every chunk, plus a uniform
    /// jitter in `[-jitter, +jitter]` (the total never goes below zero). Bytes in a
    /// direction keep their order whatever the jitter. Applies to chunks read from
    /// now on; chunks already queued keep the time they were given.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        let as_us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 4);
        self.shared
            .latency_us
            .store(as_us(latency), Ordering::Relaxed);
        self.shared
            .jitter_us
            .store(as_us(jitter), Ordering::Relaxed);
    }

    /// Removes any latency and jitter.
    pub fn clear_latency(&self) {
        self.set_latency(Duration::ZERO, Duration::ZERO);
    }

    /// While `on`, forwards no byte in either direction; connections stay open, as
    /// with a frozen peer. Up to [`MAX_QUEUED_BYTES`] per direction is still read and
    /// queued meanwhile, then TCP flow control stops the sender. Turning it off
    /// resumes forwarding with nothing lost.
    pub fn stall(&self, on: bool) {
        self.shared.stall.send_replace(on);
    }

    /// Closes every current connection abruptly, on both sides, with a reset
    /// (`SO_LINGER` 0) and without flushing queued bytes. New connections are
    /// accepted as usual.
    pub fn cut(&self) {
        self.shared.cut_generation.send_modify(|g| *g += 1);
    }

    /// While `on`, accepts new connections and resets them at once, and cuts every
    /// existing one: a partition that the peer sees as resets.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
        if on {
            self.cut();
        }
    }

    /// The proxy's counters now.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            connections_accepted: s.accepted.load(Ordering::Relaxed),
            connections_active: s.active.load(Ordering::Relaxed),
            connections_refused: s.refused.load(Ordering::Relaxed),
            connections_cut: s.cut.load(Ordering::Relaxed),
            bytes_to_upstream: s.bytes_to_upstream.load(Ordering::Relaxed),
            bytes_to_client: s.bytes_to_client.load(Ordering::Relaxed),
            chunks_delayed: s.chunks_delayed.load(Ordering::Relaxed),
        }
    }
}

/// Accepts clients until aborted, one task per connection.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    // Subscribe before anything else so that a cut from now on reaches it.
                    let cut_rx = shared.cut_generation.subscribe();
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    if shared.refuse.load(Ordering::SeqCst) {
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        debug!(%peer, "fault proxy refusing connection");
                        reset(&client);
                        continue;
                    }
                    connections.spawn(serve(client, peer, Arc::clone(&shared), cut_rx));
                }
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning.
                    debug!(%error, "fault proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Makes the coming close of `stream` send a reset instead of a FIN.
fn reset(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        debug!(%error, "cannot set SO_LINGER 0");
    }
}

/// Decrements the active-connection gauge when a connection task ends, aborted or not.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a proxied connection ended.
enum Outcome {
    /// Both directions reached EOF and were shut down cleanly.
    Closed,
    /// A cut or refusal closed it.
    Cut,
    /// A socket error on either side.
    Failed(io::Error),
}

/// Proxies one client connection until it ends or is cut.
async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut cut_rx: watch::Receiver<u64>,
) {
    shared.active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(Arc::clone(&shared));
    let upstream_addr = shared.upstream;
    debug!(%peer, upstream = %upstream_addr, "fault proxy accepted connection");

    let connected = tokio::select! {
        connected = TcpStream::connect(upstream_addr) => connected,
        _ = cut_rx.changed() => {
            shared.cut.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "fault proxy connection cut while connecting upstream");
            reset(&client);
            return;
        }
    };
    let mut upstream = match connected {
        Ok(upstream) => upstream,
        Err(error) => {
            debug!(%peer, %error, "fault proxy cannot reach upstream");
            reset(&client);
            return;
        }
    };
    for stream in [&client, &upstream] {
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
    }

    let outcome = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let to_upstream = pump(
            client_read,
            upstream_write,
            &shared,
            &shared.bytes_to_upstream,
        );
        let to_client = pump(
            upstream_read,
            client_write,
            &shared,
            &shared.bytes_to_client,
        );
        tokio::select! {
            pumped = async { tokio::try_join!(to_upstream, to_client) } => match pumped {
                Ok(_) => Outcome::Closed,
                Err(error) => Outcome::Failed(error),
            },
            _ = cut_rx.changed() => Outcome::Cut,
        }
    };

    match outcome {
        Outcome::Closed => debug!(%peer, "fault proxy connection closed"),
        Outcome::Cut => {
            shared.cut.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "fault proxy connection cut");
            reset(&client);
            reset(&upstream);
        }
        Outcome::Failed(error) => {
            debug!(%peer, %error, "fault proxy connection failed");
            reset(&client);
            reset(&upstream);
        }
    }
}

/// A chunk read from one side, to be written to the other at `due`.
struct Chunk {
    due: Instant,
    bytes: Vec<u8>,
}

/// Copies one direction until EOF (then shuts the writer down), with the
/// configured latency and stalls. Returns the bytes copied.
async fn pump<R, W>(
    mut reader: R,
    mut writer: W,
    shared: &Shared,
    counter: &AtomicU64,
) -> io::Result<u64>
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    // Byte budget of the queue; the reader takes permits, the writer gives them back.
    let budget = Semaphore::new(MAX_QUEUED_BYTES);
    let (tx, mut rx) = mpsc::unbounded_channel::<Chunk>();

    let read_side = async {
        // Owned here so that returning closes the queue.
        let tx = tx;
        let mut last_due = Instant::now();
        loop {
            let mut bytes = vec![0u8; READ_CHUNK];
            let n = reader.read(&mut bytes).await?;
            if n == 0 {
                // Dropping `tx` lets the writer drain the queue and then shut down.
                return Ok::<(), io::Error>(());
            }
            bytes.truncate(n);
            let delay = shared.chunk_delay();
            if !delay.is_zero() {
                shared.chunks_delayed.fetch_add(1, Ordering::Relaxed);
            }
            // Keep due times monotonic so the schedule matches the (FIFO) order.
            let due = (Instant::now() + delay).max(last_due);
            last_due = due;
            let permits = u32::try_from(n).unwrap_or(u32::MAX);
            match budget.acquire_many(permits).await {
                Ok(permit) => permit.forget(),
                Err(_) => return Ok(()), // The semaphore is never closed.
            }
            if tx.send(Chunk { due, bytes }).is_err() {
                return Ok(()); // The writer failed; its error ends the connection.
            }
        }
    };

    let write_side = async {
        let mut stall_rx = shared.stall.subscribe();
        let mut total = 0u64;
        while let Some(chunk) = rx.recv().await {
            tokio::time::sleep_until(chunk.due).await;
            if stall_rx.wait_for(|stalled| !*stalled).await.is_err() {
                // The sender lives in `shared`, which outlives this future.
                return Err(io::Error::other("stall signal closed"));
            }
            writer.write_all(&chunk.bytes).await?;
            let n = chunk.bytes.len();
            counter.fetch_add(n as u64, Ordering::Relaxed);
            total += n as u64;
            budget.add_permits(n);
        }
        writer.shutdown().await?;
        Ok(total)
    };

    let ((), total) = tokio::try_join!(read_side, write_side)?;
    Ok(total)
}
