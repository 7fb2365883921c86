//! The client's settings: the endpoints it may call and how it calls them.

use std::time::Duration;

use super::ClientError;

/// One fudo node the client may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// gRPC URL, e.g. `http://10.0.0.5:8001`.
    pub url: String,
    /// Region of the node; calls prefer [`ClientConfig::preferred_region`].
    pub region: String,
    /// Availability zone of the node (reported in [`EndpointStatus`](super::EndpointStatus)).
    pub az: String,
}

/// Hedging settings for stateless calls.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgeConfig {
    /// Latency percentile (0 < p <= 1, e.g. 0.95) after which a second attempt is sent.
    pub percentile: f64,
    /// Hedge delay used until 100 successful latencies are known, and the lower bound after.
    pub min_delay: Duration,
    /// Largest share of calls that may hedge (0..=1, e.g. 0.1).
    pub budget_ratio: f64,
}

/// Client settings. [`ClientConfig::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The nodes to call; at least one.
    pub endpoints: Vec<Endpoint>,
    /// Deadline of one call, retries and hedges included (default 200 ms).
    pub deadline: Duration,
    /// Attempts per call, hedges included (default 3; at least 1).
    pub max_attempts: u32,
    /// Hedging of stateless calls; `None` disables it (the default).
    pub hedge: Option<HedgeConfig>,
    /// Consecutive retryable failures after which a node is ejected (default 3; at least 1).
    pub eject_after: u32,
    /// How often ejected nodes are health-checked (default 200 ms).
    pub probe_interval: Duration,
    /// Region tried first when several nodes are healthy.
    pub preferred_region: Option<String>,
    /// Limit of one attempt within the deadline (default: none, an attempt may use the whole
    /// remaining deadline). An attempt that hits it counts against its node and the call is
    /// retried elsewhere, so a frozen or black-holed node costs one attempt timeout, not the
    /// whole deadline.
    pub attempt_timeout: Option<Duration>,
    /// HTTP/2 keep-alive ping interval; a connection whose ping is not answered within the
    /// same time is closed and its calls fail over (default 1 s; `None` disables).
    pub keepalive: Option<Duration>,
    /// Answered session steps kept per session until the server reports them durable, to
    /// resend to a node whose snapshot is behind (default 64).
    pub replay_limit: usize,
    /// Steps kept *below* the durable watermark too (default 0). Where regions replicate
    /// session state asynchronously, a node in the other region may load a snapshot older
    /// than the watermark the first region reported; set this to the replication lag times
    /// the session's step rate (e.g. 1 s × 25 steps/s = 25) so those steps can be resent.
    pub replay_margin: usize,
}

impl ClientConfig {
    /// A configuration with the default settings for `endpoints`.
    #[must_use]
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        Self {
            endpoints,
            deadline: Duration::from_millis(200),
            max_attempts: 3,
            hedge: None,
            eject_after: 3,
            probe_interval: Duration::from_millis(200),
            preferred_region: None,
            attempt_timeout: None,
            keepalive: Some(Duration::from_secs(1)),
            replay_limit: 64,
            replay_margin: 0,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::Config(m.to_owned()));
        if self.endpoints.is_empty() {
            return bad("no endpoints");
        }
        if self.deadline.is_zero() {
            return bad("deadline must be positive");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if self.eject_after == 0 {
            return bad("eject_after must be at least 1");
        }
        if self.probe_interval.is_zero() {
            return bad("probe_interval must be positive");
        }
        if self.attempt_timeout.is_some_and(|t| t.is_zero()) {
            return bad("attempt_timeout must be positive");
        }
        if self.keepalive.is_some_and(|t| t.is_zero()) {
            return bad("keepalive must be positive");
        }
        if let Some(h) = &self.hedge {
            if !(h.percentile > 0.0 && h.percentile <= 1.0) {
                return bad("hedge percentile must be in (0, 1]");
            }
            if !(0.0..=1.0).contains(&h.budget_ratio) {
                return bad("hedge budget_ratio must be in [0, 1]");
            }
        }
        Ok(())
    }
}
