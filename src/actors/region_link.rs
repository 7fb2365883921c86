//! A region link: the supervised actor that keeps one peer's heartbeat stream open and judges
//! the peer.
//!
//! The actor owns two things: a network task that dials the peer (`fudo.v1.Cluster/Link`),
//! sends a heartbeat carrying this node's identity and load every interval, and feeds each
//! echo (the peer's identity and load, and the round-trip time) to the [`Membership`]; and a
//! detector tick that advances the peer's state every few milliseconds, logging every
//! transition. A broken stream is redialled with exponential backoff; the detector, not the
//! broken stream, decides whether the peer is dead. If the network task ever ends (a panic),
//! the actor fails and its supervisor starts a fresh one.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use thiserror::Error;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::{
    link_auth::LinkAuth,
    membership::{Membership, PeerState, Transition},
};
use crate::{
    api::proto::fudo::v1::{Heartbeat, NodeIdentity, NodeLoad, cluster_client::ClusterClient},
    supervision::Backoff,
};

/// Reads this node's current load for the next heartbeat.
pub type LoadProbe = Arc<dyn Fn() -> NodeLoad + Send + Sync>;

/// Everything a link needs besides its peer's URL; shared by all links of a node.
#[derive(Clone)]
pub struct LinkContext {
    /// Who this node is.
    pub identity: NodeIdentity,
    /// This node's load, sent with every heartbeat.
    pub load: LoadProbe,
    /// The peer table the links feed.
    pub membership: Arc<Membership>,
    /// Credentials for outgoing links.
    pub auth: Arc<dyn LinkAuth>,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Redial backoff.
    pub reconnect: Backoff,
}

impl std::fmt::Debug for LinkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkContext")
            .field("node", &self.identity.node)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

/// Why a link stream ended.
#[derive(Debug, Error)]
pub enum LinkError {
    /// The peer URL is not a valid endpoint.
    #[error("invalid peer URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The peer could not be reached.
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The peer refused or ended the stream.
    #[error("stream: {0}")]
    Stream(#[from] tonic::Status),
    /// The peer closed the stream.
    #[error("peer closed the link")]
    Closed,
}

/// Messages of a region link.
#[derive(Debug)]
pub enum LinkMsg {
    /// Advance the detector.
    Tick,
    /// The network task ended (it never does unless it panicked).
    TaskEnded(String),
}

/// The region link actor for one peer URL.
#[derive(Debug)]
pub struct RegionLink;

/// A running link: its network task and detector timer.
#[derive(Debug)]
pub struct LinkState {
    url: String,
    ctx: LinkContext,
    task: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl Actor for RegionLink {
    type Msg = LinkMsg;
    type State = LinkState;
    type Arguments = (String, LinkContext);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (url, ctx): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let task = tokio::spawn(run_link(url.clone(), ctx.clone()));
        let watcher = myself.clone();
        let watched = tokio::spawn({
            let url = url.clone();
            async move {
                let reason = match task.await {
                    Ok(()) => "ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                let _ = watcher.cast(LinkMsg::TaskEnded(format!("link to {url}: {reason}")));
            }
        });
        let tick = (ctx.heartbeat / 5).max(Duration::from_millis(5));
        let ticker = myself.send_interval(tick, || LinkMsg::Tick);
        Ok(LinkState {
            url,
            ctx,
            task: watched,
            ticker,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        state.ticker.abort();
        state.ctx.membership.on_disconnect(&state.url);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LinkMsg::Tick => {
                let now = Instant::now();
                if let Some(change) = state.ctx.membership.evaluate_peer(&state.url, now) {
                    log_change(&change);
                }
            }
            LinkMsg::TaskEnded(reason) => return Err(reason.into()),
        }
        Ok(())
    }
}

/// Logs a member's state change: a warning when it becomes suspect or dead.
fn log_change(change: &Transition) {
    let silent_ms = u64::try_from(change.silent_for.as_millis()).unwrap_or(u64::MAX);
    let (from, to) = (change.from.name(), change.to.name());
    if matches!(change.to, PeerState::Dead | PeerState::Suspect) {
        tracing::warn!(
            peer = %change.url,
            node = %change.node,
            from,
            to,
            silent_ms,
            "cluster member state changed"
        );
    } else {
        tracing::info!(
            peer = %change.url,
            node = %change.node,
            from,
            to,
            silent_ms,
            "cluster member state changed"
        );
    }
}

/// Dials `url` forever: one stream at a time, redialled with backoff after it breaks (the
/// backoff restarts once a stream has lived for a few heartbeats).
async fn run_link(url: String, ctx: LinkContext) {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let result = stream_once(&url, &ctx).await;
        ctx.membership.on_disconnect(&url);
        if started.elapsed() > ctx.heartbeat * 10 {
            failures = 0;
        }
        if let Err(e) = result {
            tracing::debug!(peer = %url, error = %e, "region link down");
        }
        let delay = ctx.reconnect.delay_for(failures);
        failures = failures.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

/// One link stream: connect, then heartbeat until the stream fails.
async fn stream_once(url: &str, ctx: &LinkContext) -> Result<(), LinkError> {
    let channel = endpoint(url, ctx.heartbeat)?.connect().await?;
    let mut client = ClusterClient::new(channel.clone());
    let (tx, rx) = mpsc::channel::<Heartbeat>(8);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    ctx.auth.attach(request.metadata_mut());
    // The first heartbeat goes out with the request, so the answer is not waiting for it.
    let mut seq = 1u64;
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let _ = tx.try_send(heartbeat(ctx, seq));
    sent.insert(seq, Instant::now());
    let mut inbound = client.link(request).await?.into_inner();
    ctx.membership.on_connect(url, channel);
    let mut ticker = tokio::time::interval(ctx.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                seq += 1;
                // A full send queue (the peer is not reading) counts as a missed beat; the
                // detector sees the silence.
                if tx.try_send(heartbeat(ctx, seq)).is_ok() {
                    sent.insert(seq, Instant::now());
                }
                sent.retain(|&s, _| s + 64 > seq);
            }
            echo = inbound.message() => {
                let echo = echo?.ok_or(LinkError::Closed)?;
                let now = Instant::now();
                let rtt = sent.remove(&echo.echo_seq).map(|at| now.duration_since(at));
                ctx.membership.on_echo(url, echo.from, echo.load, rtt, now);
            }
        }
    }
}

fn endpoint(url: &str, heartbeat: Duration) -> Result<Endpoint, LinkError> {
    let bad = |reason: String| LinkError::Url {
        url: url.to_owned(),
        reason,
    };
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout((heartbeat * 5).max(Duration::from_millis(200)))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(1)))
}

fn heartbeat(ctx: &LinkContext, seq: u64) -> Heartbeat {
    Heartbeat {
        from: Some(ctx.identity.clone()),
        seq,
        sent_unix_us: chrono::Utc::now().timestamp_micros(),
        echo_seq: 0,
        echo_sent_unix_us: 0,
        load: Some((ctx.load)()),
    }
}
