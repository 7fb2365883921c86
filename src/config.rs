//! Node configuration: one TOML document with a sensible default for every setting, so
//! `fudo serve` needs no file at all. Every setting can be overridden, in increasing order of
//! precedence, by the config file, by an environment variable `FUDO_<SECTION>_<KEY>` (for
//! example `FUDO_MODELS_SHARDS=4`), and by a `--set section.key=value` flag.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a configuration could not be built.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The merged document is not a valid configuration.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// An override was not of the form `section.key=value`.
    #[error("invalid override `{0}`: expected section.key=value, e.g. models.shards=4")]
    Override(String),
}

/// The whole node configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network endpoints and node identity.
    pub server: ServerConfig,
    /// Which models to serve and how to run them.
    pub models: ModelsConfig,
    /// Where recurrent session state lives.
    pub sessions: SessionsConfig,
    /// Region links to the other nodes of the cluster.
    pub cluster: ClusterConfig,
    /// Fault injection for chaos runs.
    pub chaos: ChaosConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Network endpoints and node identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address (Triton's default port; loopback unless told otherwise).
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address.
    pub metrics_addr: SocketAddr,
    /// This node's name, reported as `served_by`.
    pub node_name: String,
    /// Region label (e.g. `ap-northeast-1`).
    pub region: String,
    /// Availability-zone label.
    pub az: String,
    /// Largest accepted request message, in bytes; larger requests get INVALID_ARGUMENT.
    pub max_message_bytes: usize,
    /// Largest number of observation rows in one request.
    pub max_rows_per_request: usize,
    /// Deadline applied to requests that carry none, in milliseconds.
    pub default_deadline_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8001)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 8002)),
            node_name: "node-1".to_owned(),
            region: "local".to_owned(),
            az: "local-a".to_owned(),
            max_message_bytes: 4 * 1024 * 1024,
            max_rows_per_request: 1024,
            default_deadline_ms: 1_000,
        }
    }
}

/// Which models to serve and how to run them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Model repository laid out `<root>/<name>/<version>/`; empty serves the bundled models
    /// embedded in the binary.
    pub repository: Option<PathBuf>,
    /// Device for the shards: `cpu` or `cuda:N`.
    pub device: String,
    /// Shards (replicas) per model.
    pub shards: usize,
    /// Most rows one shard runs in a batch.
    pub max_batch: usize,
    /// Longest a shard waits for a batch to fill, in microseconds.
    pub max_wait_us: u64,
    /// Most rows waiting in a model's queue before new requests are shed.
    pub queue_capacity: usize,
    /// Times a request is re-dispatched after shards failed under it before it fails.
    pub max_attempts: u32,
    /// Restart intensity: most shard restarts within `restart_period_ms` before escalation.
    pub max_restarts: u32,
    /// Restart intensity window, in milliseconds.
    pub restart_period_ms: u64,
    /// Delay before the second restart of a shard within the intensity window, in
    /// microseconds (the first is immediate); it doubles with each further restart.
    pub restart_backoff_initial_us: u64,
    /// Longest restart delay, in milliseconds.
    pub restart_backoff_max_ms: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            repository: None,
            device: "cpu".to_owned(),
            shards: 2,
            max_batch: 64,
            max_wait_us: 100,
            queue_capacity: 8192,
            max_attempts: 3,
            max_restarts: 1000,
            restart_period_ms: 10_000,
            restart_backoff_initial_us: 100,
            restart_backoff_max_ms: 50,
        }
    }
}

/// Where recurrent session state lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// `memory` (the embedded default) or `redis`.
    pub backend: SessionBackend,
    /// Redis URL when `backend = "redis"`: either one server, `redis://host:port/db` (any URL
    /// the redis crate accepts), with TLS and AUTH
    /// `rediss://[user]:password@host:port/db` (e.g. AWS ElastiCache with in-transit
    /// encryption: `rediss://:<auth-token>@<primary-endpoint>:6379`; the server certificate is
    /// verified, against the built-in Mozilla roots, which include Amazon's, or against
    /// `redis_ca_file`), or Redis Sentinel,
    /// `redis+sentinel://host1:port1,host2:port2/<master-name>[/<db>]` (port defaults to
    /// 26379; IPv6 hosts in brackets; no credentials, query or TLS: TLS is only for the
    /// single-server URL). With Sentinel, every (re)connect asks the sentinels in order for the
    /// current primary of `<master-name>` and checks with `ROLE` that it is one, so the store
    /// follows a failover without losing buffered writes. The password never appears in logs or
    /// errors (shown as `***`); prefer the environment over a file for it. Env
    /// `FUDO_SESSIONS_REDIS_URL`, `--set sessions.redis_url=...`.
    pub redis_url: String,
    /// PEM file with the CA certificate(s) to trust for a `rediss://` `redis_url`, instead of
    /// the built-in roots (for a Redis behind a private CA; not needed for ElastiCache).
    /// Unset (or empty): the built-in roots. Checked at start: a file that does not exist or
    /// holds no PEM certificate is a configuration error, and so is one set for a `redis://`
    /// or `redis+sentinel://` URL while `backend = "redis"`. Env
    /// `FUDO_SESSIONS_REDIS_CA_FILE`, `--set sessions.redis_ca_file=/etc/fudo/redis-ca.pem`.
    pub redis_ca_file: Option<PathBuf>,
    /// Past step results kept per session so retried steps are answered without stepping.
    pub retained_results: usize,
    /// Idle sessions leave memory after this many seconds (they stay in Redis).
    pub idle_ttl_s: u64,
    /// Recent observations each session keeps, so that a deploy can re-warm it on a new model
    /// version by replaying them (0: none; a moved session keeps its state as it is).
    pub replay_window: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            backend: SessionBackend::Memory,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_ca_file: None,
            retained_results: 32,
            idle_ttl_s: 600,
            replay_window: crate::sessions::DEFAULT_REPLAY_WINDOW,
        }
    }
}

impl SessionsConfig {
    /// [`SessionsConfig::redis_ca_file`], with an empty path read as unset.
    pub fn redis_ca_file(&self) -> Option<&std::path::Path> {
        self.redis_ca_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }
}

/// Session store backends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SessionBackend {
    /// In-process memory (lost with the process).
    Memory,
    /// Redis, write-through.
    Redis,
}

/// Region links: which peers this node keeps a heartbeat stream to, and how it judges them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// gRPC URLs of the other nodes (every AZ and region), e.g. `http://10.1.0.5:8001`.
    pub peers: Vec<String>,
    /// The URL peers and clients reach this node on (default: `http://<server.grpc_addr>`).
    pub advertise_url: String,
    /// Heartbeat interval on each link.
    pub heartbeat_ms: u64,
    /// Phi above which a peer is suspected.
    pub phi_threshold: f64,
    /// How long a peer must stay suspected before it is declared dead, and stay heard before a
    /// dead peer counts as alive again (the stability window: no verdict on one missed beat).
    pub stability_ms: u64,
    /// First reconnection delay of a broken link; doubles up to `reconnect_max_ms`.
    pub reconnect_initial_ms: u64,
    /// Largest reconnection delay.
    pub reconnect_max_ms: u64,
    /// Shared secret links present and require (`authorization: Bearer <token>`); empty: none.
    pub link_token: String,
    /// Queue fill (0..1) of a model above which stateless requests spill to a peer.
    pub spill_queue_ratio: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            advertise_url: String::new(),
            heartbeat_ms: 100,
            phi_threshold: 8.0,
            stability_ms: 300,
            reconnect_initial_ms: 50,
            reconnect_max_ms: 1000,
            link_token: String::new(),
            spill_queue_ratio: 0.8,
        }
    }
}

impl ClusterConfig {
    /// The URL this node advertises, given its gRPC listen address.
    pub fn advertised(&self, grpc_addr: SocketAddr) -> String {
        if self.advertise_url.is_empty() {
            format!("http://{grpc_addr}")
        } else {
            self.advertise_url.clone()
        }
    }

    /// The peers to link to: `peers` without this node's own URL (`own_url`, compared without
    /// a trailing slash), so that one peer list can be handed to every node of a cluster (as
    /// a Kubernetes StatefulSet does) without a node linking to itself and counting itself
    /// twice in the fencing majority.
    pub fn peers_except(&self, own_url: &str) -> Vec<String> {
        let own = own_url.trim_end_matches('/');
        self.peers
            .iter()
            .filter(|p| p.trim_end_matches('/') != own)
            .cloned()
            .collect()
    }
}

/// Fault injection for chaos runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    /// Whether the admin API's fault injection works on this node.
    pub enabled: bool,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info,fudo=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Log output formats.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl ModelsConfig {
    /// The restart backoff of model subtrees.
    pub fn backoff(&self) -> crate::supervision::Backoff {
        crate::supervision::Backoff {
            initial: Duration::from_micros(self.restart_backoff_initial_us),
            max: Duration::from_millis(self.restart_backoff_max_ms),
        }
    }

    /// The batch-fill wait as a duration.
    pub fn max_wait(&self) -> Duration {
        Duration::from_micros(self.max_wait_us)
    }
}

impl Config {
    /// Builds the configuration from an optional file, the process environment and `--set`
    /// overrides, in that order of precedence (last wins).
    pub fn load(file: Option<&std::path::Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env, overrides)
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_from(
        file: Option<&std::path::Path>,
        env: &[(String, String)],
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let mut doc = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if let Some((section, key)) = env_override_key(name) {
                set_value(&mut doc, &section, &key, value);
            }
        }
        for item in overrides {
            let (path, value) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::Override(item.clone()))?;
            let (section, key) = path
                .split_once('.')
                .ok_or_else(|| ConfigError::Override(item.clone()))?;
            set_value(&mut doc, section.trim(), key.trim(), value.trim());
        }
        let config: Config = doc
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// This configuration as it may be shown (`fudo serve --print-config`, support bundles):
    /// the Redis URL's password and the region-link token replaced by `***`. Secrets reach pods
    /// through the environment; printing the merged result must not copy them to a terminal or
    /// a CI log.
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        shown.sessions.redis_url = crate::sessions::redact_url(&self.sessions.redis_url);
        if !shown.cluster.link_token.is_empty() {
            shown.cluster.link_token = crate::sessions::REDACTED.to_owned();
        }
        shown
    }

    /// Checks the values serde cannot check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = &self.models;
        let bad = |what: &str| Err(ConfigError::Invalid(what.to_owned()));
        if m.shards == 0 {
            return bad("models.shards must be at least 1");
        }
        if m.max_batch == 0 {
            return bad("models.max_batch must be at least 1");
        }
        if m.queue_capacity < m.max_batch {
            return bad("models.queue_capacity must be at least models.max_batch");
        }
        if m.max_attempts == 0 {
            return bad("models.max_attempts must be at least 1");
        }
        if self.server.max_rows_per_request == 0 {
            return bad("server.max_rows_per_request must be at least 1");
        }
        if self.server.default_deadline_ms == 0 {
            return bad("server.default_deadline_ms must be at least 1");
        }
        let c = &self.cluster;
        if c.heartbeat_ms == 0 {
            return bad("cluster.heartbeat_ms must be at least 1");
        }
        if !(c.phi_threshold > 0.0 && c.phi_threshold.is_finite()) {
            return bad("cluster.phi_threshold must be a positive number");
        }
        if c.reconnect_initial_ms == 0 || c.reconnect_max_ms < c.reconnect_initial_ms {
            return bad(
                "cluster.reconnect_initial_ms must be at least 1 and at most cluster.reconnect_max_ms",
            );
        }
        if !(0.0..=1.0).contains(&c.spill_queue_ratio) {
            return bad("cluster.spill_queue_ratio must be between 0 and 1");
        }
        let s = &self.sessions;
        if let Some(ca_file) = s.redis_ca_file() {
            // The store decides what a CA file may go with (`sessions::ca_for`); asked here too
            // so that a wrong one is a configuration error at start.
            let checked = match s.backend {
                SessionBackend::Redis => crate::sessions::RedisTarget::parse(&s.redis_url)
                    .and_then(|target| crate::sessions::ca_for(&target, ca_file)),
                SessionBackend::Memory => crate::sessions::load_ca_file(ca_file),
            };
            checked.map_err(|e| ConfigError::Invalid(format!("sessions.redis_ca_file: {e}")))?;
        }
        if let Some(p) = c
            .peers
            .iter()
            .find(|p| !(p.starts_with("http://") || p.starts_with("https://")))
        {
            return Err(ConfigError::Invalid(format!(
                "cluster.peers: `{p}` is not an http:// or https:// URL"
            )));
        }
        Ok(())
    }
}

/// Maps `FUDO_MODELS_MAX_BATCH` to `("models", "max_batch")` for the known sections.
fn env_override_key(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("FUDO_")?;
    let lower = rest.to_ascii_lowercase();
    ["server", "models", "sessions", "cluster", "chaos", "log"]
        .iter()
        .find_map(|section| {
            let key = lower.strip_prefix(section)?.strip_prefix('_')?;
            (!key.is_empty()).then(|| ((*section).to_owned(), key.to_owned()))
        })
}

/// Sets `section.key` to `raw`, read as a TOML value when it parses as one (numbers, booleans)
/// and as a plain string otherwise (addresses, names, paths).
fn set_value(doc: &mut toml::Table, section: &str, key: &str, raw: &str) {
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let entry = doc
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(table) = entry {
        table.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests;
