//! Scenario files (`chaos/<name>.toml`): the topology, the load, the faults and when they
//! happen, the steady-state hypotheses and the abort conditions of one chaos experiment.
//!
//! A file is checked completely before anything starts: unknown keys and fault kinds, missing
//! fields, times outside the run, targets that are not in the topology and faults the chosen
//! network cannot produce are all refused with the line and column of the offending entry.

use std::{ops::Range, time::Duration};

use serde::Deserialize;
use toml::Spanned;

use crate::cluster::{NetworkMode, RedisMode, RegionSpec, Topology};

/// A scenario file that cannot be run, with where and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {reason}")]
pub struct ScenarioError {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

mod check;
use check::{check_fault, check_hypothesis};
mod fault_kind;
mod hypothesis;

pub use fault_kind::{BUSIEST_OWNER, FaultKind};
pub use hypothesis::{Hypothesis, PhaseSel};

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    summary: String,
    why: String,
    #[serde(default)]
    cluster: ClusterSection,
    load: LoadSection,
    short: Option<Spanned<ShortSection>>,
    #[serde(default, rename = "fault")]
    faults: Vec<Spanned<toml::Table>>,
    #[serde(default, rename = "hypothesis")]
    hypotheses: Vec<Spanned<Hypothesis>>,
    #[serde(default)]
    abort: AbortSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    #[serde(default)]
    regions: Option<Vec<RegionSpec>>,
    #[serde(default = "one")]
    nodes_per_az: usize,
    #[serde(default)]
    redis: RedisMode,
    #[serde(default)]
    network: NetworkMode,
    #[serde(default)]
    proxy: bool,
    #[serde(default)]
    settings: Vec<String>,
    #[serde(default)]
    models: ModelsMode,
}

/// Which models the cluster's nodes serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelsMode {
    /// The models bundled in the binary (version 1 of each).
    #[default]
    Bundled,
    /// A model repository the runner writes for deploy scenarios: version 1 of each bundled
    /// model (released), `ppo_mlp` 2 and 4 and `lstm_policy` 2 with the same weights, and
    /// `ppo_mlp` 3 whose action head is negated (its actions diverge).
    DeployFixtures,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            regions: None,
            nodes_per_az: 1,
            redis: RedisMode::default(),
            network: NetworkMode::default(),
            proxy: false,
            settings: Vec::new(),
            models: ModelsMode::default(),
        }
    }
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadSection {
    rate: f64,
    duration_s: f64,
    #[serde(default = "default_warmup")]
    warmup_s: f64,
    #[serde(default = "default_deadline")]
    deadline_ms: u64,
    #[serde(default = "default_attempt_timeout")]
    attempt_timeout_ms: u64,
    #[serde(default)]
    sessions: usize,
    #[serde(default = "default_session_rate")]
    session_rate: f64,
    #[serde(default = "default_stateless_model")]
    stateless_model: String,
    #[serde(default = "default_recurrent_model")]
    recurrent_model: String,
    #[serde(default = "yes")]
    hedge: bool,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    clients: ClientsMode,
}

/// How the load generator's clients see the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientsMode {
    /// One client that knows every node (a gateway with endpoints in both regions).
    #[default]
    Global,
    /// One client per region that knows only its region's nodes, each sending its share of
    /// the load (gateways on both sides of a region partition).
    PerRegion,
}

fn default_warmup() -> f64 {
    2.0
}
fn default_deadline() -> u64 {
    250
}
fn default_attempt_timeout() -> u64 {
    40
}
fn default_session_rate() -> f64 {
    20.0
}
fn default_stateless_model() -> String {
    "ppo_mlp".into()
}
fn default_recurrent_model() -> String {
    "lstm_policy".into()
}
fn yes() -> bool {
    true
}
fn default_seed() -> u64 {
    7
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShortSection {
    duration_s: f64,
    time_scale: f64,
    rate: Option<f64>,
    sessions: Option<usize>,
}

/// A `[[fault]]` entry: the timing keys, and the rest of the table as the [`FaultKind`]
/// (split by hand because serde's `flatten` cannot be combined with `deny_unknown_fields`).
struct FaultEntry {
    at_s: f64,
    for_s: Option<f64>,
    window_s: Option<f64>,
    kind: FaultKind,
}

impl FaultEntry {
    fn from_table(mut table: toml::Table) -> Result<Self, String> {
        let mut time = |key: &str| -> Result<Option<f64>, String> {
            match table.remove(key) {
                None => Ok(None),
                Some(toml::Value::Float(v)) => Ok(Some(v)),
                #[allow(clippy::cast_precision_loss)]
                Some(toml::Value::Integer(v)) => Ok(Some(v as f64)),
                Some(other) => Err(format!(
                    "`{key}` must be a number of seconds, got {}",
                    other.type_str()
                )),
            }
        };
        let at_s = time("at_s")?.ok_or("missing field `at_s`")?;
        let for_s = time("for_s")?;
        let window_s = time("window_s")?;
        let kind: FaultKind = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_owned())?;
        Ok(Self {
            at_s,
            for_s,
            window_s,
            kind,
        })
    }
}

/// When to stop a run early.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortSpec {
    /// Abort when the failed share of one second's requests exceeds this ...
    #[serde(default = "default_abort_ratio")]
    pub error_ratio: f64,
    /// ... for this many consecutive seconds.
    #[serde(default = "default_abort_seconds")]
    pub seconds: u32,
}

fn default_abort_ratio() -> f64 {
    0.5
}
fn default_abort_seconds() -> u32 {
    5
}

impl Default for AbortSpec {
    fn default() -> Self {
        Self {
            error_ratio: default_abort_ratio(),
            seconds: default_abort_seconds(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checked scenario.

/// The load a scenario applies.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// Total requests per second (stateless at `rate − sessions × session_rate`).
    pub rate: f64,
    /// Measured duration (after warm-up).
    pub duration: Duration,
    /// Unmeasured warm-up before `t = 0`.
    pub warmup: Duration,
    /// Deadline of every call.
    pub deadline: Duration,
    /// Per-attempt limit within the deadline.
    pub attempt_timeout: Duration,
    /// Recurrent sessions.
    pub sessions: usize,
    /// Steps per second of each session.
    pub session_rate: f64,
    /// Model of the stateless requests.
    pub stateless_model: String,
    /// Model of the recurrent sessions.
    pub recurrent_model: String,
    /// Whether the client hedges stateless calls.
    pub hedge: bool,
    /// Seed of the observations.
    pub seed: u64,
    /// One global client, or one per region.
    pub clients: ClientsMode,
}

impl LoadSpec {
    /// Requests per second of stateless traffic.
    #[must_use]
    pub fn stateless_rate(&self) -> f64 {
        (self.rate - self.sessions as f64 * self.session_rate).max(0.0)
    }
}

/// A fault with its times resolved (relative to the end of warm-up).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Position in the file.
    pub index: usize,
    /// What it does.
    pub kind: FaultKind,
    /// When it is injected.
    pub at: Duration,
    /// When a lasting fault is healed.
    pub heal_at: Option<Duration>,
    /// End of the fault's "during" phase (heal time, or `at + window_s` for instant faults).
    pub window_end: Duration,
    /// Line in the file.
    pub line: usize,
}

/// The cluster a scenario runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPlan {
    /// Regions × AZs × nodes.
    pub topology: Topology,
    /// Redis deployment.
    pub redis: RedisMode,
    /// Loopback or namespaces.
    pub network: NetworkMode,
    /// Client traffic goes through a fault proxy per node.
    pub proxy: bool,
    /// Extra `--set` for nodes.
    pub settings: Vec<String>,
    /// Which models the nodes serve.
    pub models: ModelsMode,
}

/// A checked scenario, in its long or short form.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// One line.
    pub summary: String,
    /// Why its hypotheses are the right ones.
    pub why: String,
    /// Whether this is the short form.
    pub short: bool,
    /// Cluster.
    pub cluster: ClusterPlan,
    /// Load.
    pub load: LoadSpec,
    /// Faults, by injection time.
    pub faults: Vec<Fault>,
    /// Hypotheses.
    pub hypotheses: Vec<Hypothesis>,
    /// Abort conditions.
    pub abort: AbortSpec,
}

/// Converts a byte offset to 1-based (line, column).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, column)
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn err(&self, span: Range<usize>, reason: impl Into<String>) -> ScenarioError {
        let (line, column) = line_col(self.text, span.start);
        ScenarioError {
            file: self.file.to_owned(),
            line,
            column,
            reason: reason.into(),
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl Scenario {
    /// Parses and checks `text` (named `file` in errors); `short` selects the short form.
    ///
    /// # Errors
    ///
    /// [`ScenarioError`] with the line and the reason.
    pub fn parse(file: &str, text: &str, short: bool) -> Result<Self, ScenarioError> {
        let c = Checker { file, text };
        let parsed: File = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            c.err(span, e.message().to_owned())
        })?;
        let top = 0..0;
        if parsed.name.trim().is_empty() {
            return Err(c.err(top, "`name` must not be empty"));
        }
        let cs = parsed.cluster;
        let topology = Topology {
            regions: cs.regions.unwrap_or_else(|| Topology::default().regions),
            nodes_per_az: cs.nodes_per_az,
        };
        topology
            .validate()
            .map_err(|e| c.err(find(text, "[cluster]"), e.to_string()))?;
        for s in &cs.settings {
            if !s.contains('=') || !s.contains('.') {
                return Err(c.err(
                    find(text, "settings"),
                    format!("setting {s:?} must look like section.key=value"),
                ));
            }
        }
        let mut l = parsed.load;
        let load_span = find(text, "[load]");
        let mut time_scale = 1.0;
        if short {
            let Some(sh) = parsed.short else {
                return Err(c.err(
                    top,
                    "--short was asked for but the file has no [short] section",
                ));
            };
            let span = sh.span();
            let sh = sh.into_inner();
            if !(sh.time_scale > 0.0 && sh.time_scale <= 1.0) {
                return Err(c.err(span, "short.time_scale must be in (0, 1]"));
            }
            time_scale = sh.time_scale;
            l.duration_s = sh.duration_s;
            l.rate = sh.rate.unwrap_or(l.rate);
            l.sessions = sh.sessions.unwrap_or(l.sessions);
        }
        if !(l.duration_s.is_finite() && l.duration_s > 0.0 && l.duration_s <= 3600.0) {
            return Err(c.err(
                load_span,
                format!("load.duration_s must be in (0, 3600], got {}", l.duration_s),
            ));
        }
        if !(l.warmup_s.is_finite() && (0.0..=60.0).contains(&l.warmup_s)) {
            return Err(c.err(load_span, "load.warmup_s must be in [0, 60]"));
        }
        if !(l.rate.is_finite() && l.rate > 0.0 && l.rate <= 100_000.0) {
            return Err(c.err(
                load_span,
                format!("load.rate must be in (0, 100000], got {}", l.rate),
            ));
        }
        if !(l.session_rate.is_finite() && l.session_rate > 0.0) {
            return Err(c.err(load_span, "load.session_rate must be > 0"));
        }
        if l.sessions as f64 * l.session_rate > l.rate {
            return Err(c.err(
                load_span,
                format!(
                    "load.sessions × load.session_rate ({}) exceeds load.rate ({})",
                    l.sessions as f64 * l.session_rate,
                    l.rate
                ),
            ));
        }
        if l.deadline_ms == 0 || l.attempt_timeout_ms == 0 || l.attempt_timeout_ms > l.deadline_ms {
            return Err(c.err(
                load_span,
                "need 0 < load.attempt_timeout_ms <= load.deadline_ms",
            ));
        }
        let duration = secs(l.duration_s);
        let load = LoadSpec {
            rate: l.rate,
            duration,
            warmup: secs(l.warmup_s),
            deadline: Duration::from_millis(l.deadline_ms),
            attempt_timeout: Duration::from_millis(l.attempt_timeout_ms),
            sessions: l.sessions,
            session_rate: l.session_rate,
            stateless_model: l.stateless_model,
            recurrent_model: l.recurrent_model,
            hedge: l.hedge,
            seed: l.seed,
            clients: l.clients,
        };
        let plan = ClusterPlan {
            topology,
            redis: cs.redis,
            network: cs.network,
            proxy: cs.proxy,
            settings: cs.settings,
            models: cs.models,
        };
        let mut faults = Vec::new();
        for (index, entry) in parsed.faults.into_iter().enumerate() {
            let span = entry.span();
            let line = line_col(text, span.start).0;
            let f = FaultEntry::from_table(entry.into_inner()).map_err(|reason| {
                c.err(span.clone(), format!("[[fault]] #{}: {reason}", index + 1))
            })?;
            faults.push(check_fault(
                &c, span, &plan, duration, time_scale, index, line, f,
            )?);
        }
        faults.sort_by_key(|f| f.at);
        let mut hypotheses = Vec::new();
        for h in parsed.hypotheses {
            let span = h.span();
            let h = h.into_inner();
            check_hypothesis(&c, span, &h, &faults, &load)?;
            hypotheses.push(if short { h.for_short_form() } else { h });
        }
        if hypotheses.is_empty() {
            return Err(c.err(top, "a scenario needs at least one [[hypothesis]]"));
        }
        let abort = parsed.abort;
        if !(abort.error_ratio > 0.0 && abort.error_ratio <= 1.0) || abort.seconds == 0 {
            return Err(c.err(
                find(text, "[abort]"),
                "abort.error_ratio must be in (0, 1] and abort.seconds ≥ 1",
            ));
        }
        Ok(Self {
            name: parsed.name,
            summary: parsed.summary,
            why: parsed.why,
            short,
            cluster: plan,
            load,
            faults,
            hypotheses,
            abort,
        })
    }
}

/// The span of the first occurrence of `needle` (for errors about a whole section).
fn find(text: &str, needle: &str) -> Range<usize> {
    text.find(needle).map_or(0..0, |i| i..i + needle.len())
}

#[cfg(test)]
mod tests;
