//! The gateway client library: how trading gateways call fudo nodes.
//!
//! High availability lives partly here because DNS and load-balancer health checks fail over in
//! tens of seconds, while a trading gateway needs an answer within one call's deadline. The client
//! therefore keeps a channel to every node and, per call:
//!
//! - enforces a deadline (sent to the server as `grpc-timeout` with the remaining budget, and
//!   enforced locally, so a black-holed node cannot hold a call past it);
//! - retries retryable failures on a *different* node while attempts and deadline remain;
//! - optionally hedges stateless calls (a second copy to another node once the first is slower
//!   than a tracked latency percentile), within a budget so outages do not double traffic;
//! - ejects nodes after consecutive retryable failures and re-admits them when a background
//!   prober sees grpc.health.v1 `SERVING`;
//! - keeps recurrent sessions sticky to one node, moving them only when that node fails (the
//!   server's `sequence_seq` makes the retried step idempotent), within the same region first
//!   and by rendezvous hashing (see `placement`). Sessions are never hedged: a session step
//!   must not be computed on two nodes at once.
//!
//! Retryable statuses are `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, and `UNKNOWN` or `CANCELLED` when
//! they come from the transport (the source is a `tonic::transport::Error`, or an `UNKNOWN`
//! message mentions "transport" or "connect"): tonic reports refused, reset and closed
//! connections that way (a node killed mid-call gives `CANCELLED` "connection closed"). Everything
//! else (`INVALID_ARGUMENT`, `NOT_FOUND`, `FAILED_PRECONDITION`, `INTERNAL`, ...) is the request's
//! or the model's problem and is returned at once.

mod config;
mod error;
mod hedge;
mod placement;
mod probe;
mod session_replay;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::health_client::HealthClient;

use crate::api::proto::inference::{
    ModelInferRequest, ModelInferResponse,
    grpc_inference_service_client::GrpcInferenceServiceClient,
};
pub use config::{ClientConfig, Endpoint, HedgeConfig};
pub use error::{ClientError, is_retryable};
use hedge::HedgeState;
use placement::{Placement, rendezvous_weight};
use session_replay::ReplayBuffer;
pub use session_replay::{EXPECTED_SEQ_METADATA, expected_seq};

/// The service name probed with grpc.health.v1 `Check`.
pub const HEALTH_SERVICE: &str = "inference.GRPCInferenceService";

/// A snapshot of one endpoint's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's region.
    pub region: String,
    /// The endpoint's availability zone.
    pub az: String,
    /// Whether the endpoint is ejected (skipped until the prober sees it `SERVING`).
    pub ejected: bool,
    /// Attempts in flight on this endpoint.
    pub outstanding: u32,
    /// Retryable failures since the last success.
    pub consecutive_failures: u32,
}

/// Lifetime counters of a client (all clones together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// Calls made (`infer` and `infer_session`).
    pub calls: u64,
    /// Attempts started, first attempts, retries and hedges included.
    pub attempts: u64,
    /// Hedged attempts sent.
    pub hedges: u64,
    /// Session steps resent to a node whose snapshot was behind.
    pub replays: u64,
}

/// Client for a set of fudo nodes. Cheap to clone; clones share channels and state, and the
/// background prober stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct FudoClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct EndpointState {
    endpoint: Endpoint,
    infer: GrpcInferenceServiceClient<Channel>,
    health: HealthClient<Channel>,
    outstanding: AtomicU32,
    consecutive_failures: AtomicU32,
    ejected: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    endpoints: Vec<EndpointState>,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    replays: AtomicU64,
    hedge: Option<HedgeState>,
    calls: AtomicU64,
    attempts: AtomicU64,
}

/// A session's node and its steps not yet durable.
#[derive(Debug)]
struct SessionEntry {
    endpoint: usize,
    replay: ReplayBuffer,
    /// The newest owner epoch seen in the session's answers, sent with every step so that a
    /// node holding an older one takes the session over again instead of answering as a
    /// stale owner.
    max_epoch: u64,
}

/// Decrements an endpoint's outstanding count when an attempt ends or is cancelled.
struct Outstanding<'a>(&'a AtomicU32);

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-call bookkeeping shared by the attempt loop and the hedge.
struct CallState {
    deadline: Instant,
    tried: Vec<usize>,
    attempts: u32,
    last: Option<Status>,
}

impl CallState {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What an attempt carries: a stateless call (which may hedge) or a session step (which never
/// does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traffic {
    Stateless,
    Session,
}

impl FudoClient {
    /// Creates lazy channels to every endpoint (nothing is dialled until the first call) and
    /// starts the background prober. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for an invalid configuration or endpoint URL.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        config.validate()?;
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for e in &config.endpoints {
            let mut endpoint = tonic::transport::Endpoint::from_shared(e.url.clone())
                .map_err(|err| ClientError::Config(format!("endpoint {}: {err}", e.url)))?
                .connect_timeout(config.attempt_timeout.unwrap_or(config.deadline))
                .tcp_nodelay(true);
            if let Some(k) = config.keepalive {
                endpoint = endpoint
                    .http2_keep_alive_interval(k)
                    .keep_alive_timeout(k)
                    .keep_alive_while_idle(true);
            }
            let channel = endpoint.connect_lazy();
            endpoints.push(EndpointState {
                endpoint: e.clone(),
                infer: GrpcInferenceServiceClient::new(channel.clone()),
                health: HealthClient::new(channel),
                outstanding: AtomicU32::new(0),
                consecutive_failures: AtomicU32::new(0),
                ejected: AtomicBool::new(false),
            });
        }
        let hedge = config
            .hedge
            .clone()
            .map(HedgeState::new)
            .transpose()
            .map_err(ClientError::Config)?;
        let inner = Arc::new(Inner {
            config,
            endpoints,
            sessions: Mutex::new(HashMap::new()),
            replays: AtomicU64::new(0),
            hedge,
            calls: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        });
        tokio::spawn(probe::probe_loop(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Runs a stateless inference on any healthy node: the preferred region first, then the
    /// node with the fewest attempts in flight. Retries and (if configured) hedges.
    ///
    /// # Errors
    ///
    /// [`ClientError::Status`] for a non-retryable status, [`ClientError::DeadlineExceeded`] or
    /// [`ClientError::Exhausted`] when retries did not succeed in time.
    pub async fn infer(&self, req: ModelInferRequest) -> Result<ModelInferResponse, ClientError> {
        let inner = &self.inner;
        inner.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = &inner.hedge {
            h.count_call();
        }
        let mut call = inner.start_call();
        let mut first = true;
        let mut req = Some(req);
        loop {
            let Some(idx) = inner.next_endpoint(&call, None, None)? else {
                return Err(inner.give_up(call));
            };
            let result = match (&inner.hedge, &req) {
                (Some(h), Some(r)) if first && inner.endpoints.len() > 1 => {
                    inner.hedged_attempt(h, idx, r, &mut call).await
                }
                _ => match inner.for_attempt(&mut req, &call) {
                    Some(r) => inner.attempt(idx, r, &mut call, Traffic::Stateless).await,
                    None => return Err(inner.give_up(call)),
                },
            };
            first = false;
            match result {
                Ok(resp) => return Ok(resp),
                Err(status) => inner.on_error(status, &mut call)?,
            }
        }
    }

    /// Runs one step of a recurrent session on the session's node; the first step picks a node
    /// like [`FudoClient::infer`]. On a retryable failure (or if the node was ejected) the session
    /// moves to another node and stays there. Never hedged. When the new node's snapshot is
    /// behind (it answers FAILED_PRECONDITION with the seq it expects), the buffered steps from
    /// that seq are resent to it first (see `replay_limit`).
    ///
    /// # Errors
    ///
    /// As [`FudoClient::infer`].
    pub async fn infer_session(
        &self,
        session_id: &str,
        req: ModelInferRequest,
    ) -> Result<ModelInferResponse, ClientError> {
        let inner = &self.inner;
        inner.calls.fetch_add(1, Ordering::Relaxed);
        let mut call = inner.start_call();
        let seq = session_replay::request_seq(&req);
        let mut sticky = inner
            .lock_sessions()
            .get(session_id)
            .map(|e| e.endpoint)
            .filter(|&i| i < inner.endpoints.len());
        // Where the session lives now: if it must move, it moves within this region first.
        let home = sticky.map(|i| inner.endpoints[i].endpoint.region.clone());
        loop {
            let placement = Placement {
                session_id,
                home_region: home.as_deref(),
            };
            let Some(idx) = inner.next_endpoint(&call, sticky.take(), Some(placement))? else {
                return Err(inner.give_up(call));
            };
            let max_epoch = {
                let mut sessions = inner.lock_sessions();
                let entry = sessions
                    .entry(session_id.to_owned())
                    .or_insert_with(|| SessionEntry {
                        endpoint: idx,
                        replay: ReplayBuffer::default(),
                        max_epoch: 0,
                    });
                entry.endpoint = idx;
                entry.max_epoch
            };
            let stamped = session_replay::with_min_epoch(req.clone(), max_epoch);
            match inner
                .attempt(idx, stamped, &mut call, Traffic::Session)
                .await
            {
                Ok(resp) => {
                    if let Some(seq) = seq {
                        inner.record_step(session_id, seq, req, &resp);
                    }
                    return Ok(resp);
                }
                Err(status) => {
                    let missing = match (session_replay::expected_seq(&status), seq) {
                        (Some(expected), Some(seq)) if expected < seq => inner
                            .lock_sessions()
                            .get(session_id)
                            .and_then(|e| e.replay.range(expected, seq)),
                        _ => None,
                    };
                    let Some(missing) = missing else {
                        inner.on_error(status, &mut call)?;
                        continue;
                    };
                    match inner.replay(session_id, idx, missing, &call).await {
                        // The node has caught up: send the current step to it again.
                        Ok(()) => sticky = Some(idx),
                        Err(status) => inner.on_error(status, &mut call)?,
                    }
                }
            }
        }
    }

    /// Forgets a session's node (call when the session ends, so the map does not grow).
    pub fn end_session(&self, session_id: &str) {
        self.inner.lock_sessions().remove(session_id);
    }

    /// A snapshot of every endpoint's state, in configuration order.
    #[must_use]
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        self.inner
            .endpoints
            .iter()
            .map(|e| EndpointStatus {
                url: e.endpoint.url.clone(),
                region: e.endpoint.region.clone(),
                az: e.endpoint.az.clone(),
                ejected: e.ejected.load(Ordering::Relaxed),
                outstanding: e.outstanding.load(Ordering::Relaxed),
                consecutive_failures: e.consecutive_failures.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Lifetime counters of this client and its clones.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            calls: self.inner.calls.load(Ordering::Relaxed),
            attempts: self.inner.attempts.load(Ordering::Relaxed),
            hedges: self.inner.hedge.as_ref().map_or(0, HedgeState::hedges_sent),
            replays: self.inner.replays.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    fn start_call(&self) -> CallState {
        CallState {
            deadline: Instant::now() + self.config.deadline,
            tried: Vec::new(),
            attempts: 0,
            last: None,
        }
    }

    /// The request for the next attempt: moved out on the call's last possible attempt (with
    /// the default single attempt, the request is never copied), cloned otherwise.
    fn for_attempt(
        &self,
        req: &mut Option<ModelInferRequest>,
        call: &CallState,
    ) -> Option<ModelInferRequest> {
        if call.attempts + 1 >= self.config.max_attempts {
            req.take()
        } else {
            req.clone()
        }
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record_step(
        &self,
        session_id: &str,
        seq: u64,
        req: ModelInferRequest,
        resp: &ModelInferResponse,
    ) {
        let watermark = session_replay::response_watermark(resp);
        let epoch = session_replay::response_owner_epoch(resp);
        if let Some(e) = self.lock_sessions().get_mut(session_id) {
            e.max_epoch = e.max_epoch.max(epoch);
            e.replay.record(
                seq,
                req,
                watermark,
                self.config.replay_margin,
                self.config.replay_limit,
            );
        }
    }

    /// Resends buffered steps to endpoint `idx`, in order, within the call's deadline (replays
    /// do not count as attempts: a long gap needs many).
    async fn replay(
        &self,
        session_id: &str,
        idx: usize,
        missing: Vec<ModelInferRequest>,
        call: &CallState,
    ) -> Result<(), Status> {
        tracing::info!(
            session = session_id,
            steps = missing.len(),
            url = %self.endpoints[idx].endpoint.url,
            "node is behind the session; resending buffered steps"
        );
        let max_epoch = self
            .lock_sessions()
            .get(session_id)
            .map_or(0, |e| e.max_epoch);
        for step in missing {
            let seq = session_replay::request_seq(&step);
            let stamped = session_replay::with_min_epoch(step.clone(), max_epoch);
            let resp = self
                .attempt_on(idx, stamped, self.attempt_budget(call), Traffic::Session)
                .await?;
            self.replays.fetch_add(1, Ordering::Relaxed);
            if let Some(seq) = seq {
                self.record_step(session_id, seq, step, &resp);
            }
        }
        Ok(())
    }

    /// The endpoint for the next attempt, or `None` when attempts or time are used up.
    fn next_endpoint(
        &self,
        call: &CallState,
        sticky: Option<usize>,
        session: Option<Placement<'_>>,
    ) -> Result<Option<usize>, ClientError> {
        if call.attempts >= self.config.max_attempts || call.remaining().is_zero() {
            return Ok(None);
        }
        if let Some(i) = sticky.filter(|&i| !self.endpoints[i].ejected.load(Ordering::Relaxed)) {
            return Ok(Some(i));
        }
        match session {
            Some(p) => self.place_session(p, &call.tried),
            None => self.pick(&call.tried),
        }
        .map(Some)
        .ok_or(ClientError::NoEndpoints)
    }

    /// Chooses the node for a session that has none or must leave its node, as [`Self::choose`]
    /// does within the session's home region (or the preferred region for a new session),
    /// ties broken by rendezvous hashing of the session id: that spreads a lost node's
    /// sessions evenly over the survivors and sends each session to the same survivor every
    /// time, so retries of one step do not scatter it over several nodes.
    fn place_session(&self, p: Placement<'_>, tried: &[usize]) -> Option<usize> {
        let region = p.home_region.or(self.config.preferred_region.as_deref());
        self.choose(tried, region, |e| {
            u64::MAX - rendezvous_weight(p.session_id, &e.endpoint.url)
        })
    }

    /// Chooses an endpoint for a stateless call, as [`Self::choose`] does within the preferred
    /// region, ties broken by fewest outstanding calls, then at random.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        self.choose(tried, self.config.preferred_region.as_deref(), |e| {
            (u64::from(e.outstanding.load(Ordering::Relaxed)) << 32)
                | u64::from(rand::random::<u32>())
        })
    }

    /// Never the last endpoint tried (unless it is the only one), then by (ejected, already
    /// tried, outside `region`, `tie_break`). Ejected endpoints are still chosen when nothing
    /// else is left (fail open).
    fn choose(
        &self,
        tried: &[usize],
        region: Option<&str>,
        tie_break: impl Fn(&EndpointState) -> u64,
    ) -> Option<usize> {
        let last = tried.last().copied();
        self.endpoints
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.endpoints.len() == 1 || Some(i) != last)
            .min_by_key(|&(i, e)| {
                (
                    e.ejected.load(Ordering::Relaxed),
                    tried.contains(&i),
                    region.is_some_and(|r| r != e.endpoint.region),
                    tie_break(e),
                )
            })
            .map(|(i, _)| i)
    }

    /// One attempt on endpoint `idx` with the call's remaining budget as its deadline.
    async fn attempt(
        &self,
        idx: usize,
        req: ModelInferRequest,
        call: &mut CallState,
        traffic: Traffic,
    ) -> Result<ModelInferResponse, Status> {
        call.attempts += 1;
        call.tried.push(idx);
        let budget = self.attempt_budget(call);
        self.attempt_on(idx, req, budget, traffic).await
    }

    /// The time one attempt may take: the remaining deadline, capped by the attempt timeout
    /// unless this is the last attempt the call may make.
    fn attempt_budget(&self, call: &CallState) -> Duration {
        let remaining = call.remaining();
        match self.config.attempt_timeout {
            Some(t) if call.attempts < self.config.max_attempts => t.min(remaining),
            _ => remaining,
        }
    }

    async fn attempt_on(
        &self,
        idx: usize,
        req: ModelInferRequest,
        budget: Duration,
        traffic: Traffic,
    ) -> Result<ModelInferResponse, Status> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let e = &self.endpoints[idx];
        e.outstanding.fetch_add(1, Ordering::Relaxed);
        let _guard = Outstanding(&e.outstanding);
        let mut request = tonic::Request::new(req);
        request.set_timeout(budget);
        let mut client = e.infer.clone();
        let start = Instant::now();
        let result = match tokio::time::timeout(budget, client.model_infer(request)).await {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("client deadline exceeded")),
        };
        // tonic's channel enforces the grpc-timeout set above itself and reports its expiry as
        // CANCELLED "Timeout expired", racing the local timeout; both mean the deadline passed.
        let result = result.map_err(|s| {
            let expired = s.code() == Code::Cancelled
                && (s.message() == "Timeout expired" || start.elapsed() >= budget);
            if expired {
                Status::deadline_exceeded(format!("client deadline exceeded: {}", s.message()))
            } else {
                s
            }
        });
        match &result {
            Ok(_) => {
                self.record_success(idx);
                // The hedge delay is a percentile of the calls that hedge: session steps run
                // another model, are never hedged, and under a latency fault on their node
                // would otherwise raise the delay for every stateless call.
                if let (Some(h), Traffic::Stateless) = (&self.hedge, traffic) {
                    h.record_success(start.elapsed());
                }
            }
            // A local timeout counts against the node: a black-holed node would otherwise never
            // be ejected.
            Err(s) if is_retryable(s) || s.code() == Code::DeadlineExceeded => {
                self.record_failure(idx, s);
            }
            // The node answered; the request was at fault.
            Err(_) => self.record_success(idx),
        }
        result
    }

    /// Handles a failed attempt: `Ok` to retry, `Err` to return.
    fn on_error(&self, status: Status, call: &mut CallState) -> Result<(), ClientError> {
        // An attempt that ran into the attempt timeout while the call still has time left is
        // retried elsewhere like an unavailable node.
        if status.code() == Code::DeadlineExceeded
            && self.config.attempt_timeout.is_some()
            && !call.remaining().is_zero()
        {
            tracing::debug!(attempts = call.attempts, %status, "attempt timed out; retrying");
            call.last = Some(status);
            return Ok(());
        }
        if status.code() == Code::DeadlineExceeded {
            return Err(ClientError::DeadlineExceeded {
                attempts: call.attempts,
                last: Some(status),
            });
        }
        if !is_retryable(&status) {
            return Err(ClientError::Status(status));
        }
        tracing::debug!(attempts = call.attempts, %status, "retrying inference call");
        call.last = Some(status);
        Ok(())
    }

    /// The error for a call that ran out of attempts or time.
    fn give_up(&self, call: CallState) -> ClientError {
        match call.last {
            Some(last) if call.attempts >= self.config.max_attempts => ClientError::Exhausted {
                attempts: call.attempts,
                last,
            },
            last => ClientError::DeadlineExceeded {
                attempts: call.attempts,
                last,
            },
        }
    }

    fn record_success(&self, idx: usize) {
        let e = &self.endpoints[idx];
        e.consecutive_failures.store(0, Ordering::Relaxed);
        if e.ejected.swap(false, Ordering::Relaxed) {
            tracing::info!(url = %e.endpoint.url, "endpoint re-admitted after a successful call");
        }
    }

    fn record_failure(&self, idx: usize, status: &Status) {
        let e = &self.endpoints[idx];
        let failures = e.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.config.eject_after && !e.ejected.swap(true, Ordering::Relaxed) {
            tracing::warn!(url = %e.endpoint.url, failures, %status, "endpoint ejected");
        }
    }
}
