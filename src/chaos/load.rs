//! The chaos runner's load: open-loop stateless traffic plus recurrent sessions, sent through
//! the gateway client library ([`FudoClient`]) exactly as a trading gateway would, with every
//! request recorded in the [`History`].
//!
//! Stateless request `n` is scheduled at `n / rate` and its latency is measured from that
//! scheduled time, so a stall shows up in the percentiles instead of slowing the generator
//! (no coordinated omission). Each session steps one observation at a time at `session_rate`;
//! its observations are a deterministic function of the seed, the session and the seq, so a
//! fault-free reference run can be recomputed afterwards. A failed step is sent again with the
//! same seq; a sequence-gap answer (the new node's snapshot is older than the last answered
//! step) makes the session resend from the seq the node asks for, as the client's replay
//! buffer does.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::{
    history::{History, Op, OpKind, offset_us},
    scenario::LoadSpec,
};
use crate::{
    api::{
        proto::inference::{ModelInferResponse, infer_parameter::ParameterChoice},
        sequence,
    },
    bench::request::{ACTION_OUTPUT, ObsPool, SequenceStep, build_request},
    client::{ClientError, FudoClient},
};

/// Observation sizes of the two models.
#[derive(Debug, Clone, Copy)]
pub struct ModelDims {
    /// Stateless model's `obs_dim`.
    pub stateless_obs: usize,
    /// Recurrent model's `obs_dim`.
    pub recurrent_obs: usize,
}

/// Sequence ids of session `s` start here (so they never collide with other tools' ids).
pub const SESSION_ID_BASE: i64 = 7_000_000;

/// The observation pool of session `s` (one row per payload; payload `seq` is step `seq`).
#[must_use]
pub fn session_pool(seed: u64, session: usize, obs_dim: usize) -> ObsPool {
    ObsPool::new(
        seed ^ (session as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        1,
        obs_dim,
    )
}

/// Shared state of one load run.
struct Gen {
    /// The gateways: one, or one per region; session `s` uses client `s % n`.
    clients: Vec<FudoClient>,
    spec: LoadSpec,
    history: History,
    /// End of warm-up: `t = 0` of the report.
    t0: Instant,
    /// No request is issued after this.
    end: Instant,
    next_id: AtomicU64,
}

impl Gen {
    fn record(
        &self,
        process: String,
        kind: OpKind,
        seq: Option<u64>,
        start: Instant,
        result: &Result<ModelInferResponse, ClientError>,
    ) {
        let end = Instant::now();
        let mut op = Op {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            process,
            kind,
            seq,
            start_us: offset_us(start, self.t0),
            end_us: offset_us(end, self.t0),
            ok: false,
            status: String::new(),
            error: None,
            served_by: None,
            action: None,
            replayed: false,
            owner_epoch: None,
        };
        match result {
            Ok(resp) => match first_action(resp) {
                Some(action) => {
                    op.ok = true;
                    op.status = "OK".into();
                    op.action = Some(action);
                    op.served_by = string_param(resp, sequence::SERVED_BY);
                    op.replayed = matches!(
                        resp.parameters
                            .get(sequence::REPLAYED)
                            .and_then(|p| p.parameter_choice.as_ref()),
                        Some(ParameterChoice::BoolParam(true))
                    );
                    op.owner_epoch = match resp
                        .parameters
                        .get(sequence::OWNER_EPOCH)
                        .and_then(|p| p.parameter_choice.as_ref())
                    {
                        Some(ParameterChoice::Int64Param(e)) => u64::try_from(*e).ok(),
                        _ => None,
                    };
                }
                None => {
                    op.status = "BAD_RESPONSE".into();
                    op.error = Some("no INT64 `action` output in the response".into());
                }
            },
            Err(e) => {
                op.status = e.status_name().into();
                op.error = Some(e.to_string());
            }
        }
        self.history.push(op);
    }
}

fn string_param(resp: &ModelInferResponse, name: &str) -> Option<String> {
    match resp.parameters.get(name)?.parameter_choice.as_ref()? {
        ParameterChoice::StringParam(s) => Some(s.clone()),
        _ => None,
    }
}

/// The first row's action (raw INT64 little-endian or typed contents).
#[must_use]
pub fn first_action(resp: &ModelInferResponse) -> Option<i64> {
    let i = resp.outputs.iter().position(|o| o.name == ACTION_OUTPUT)?;
    if let Some(raw) = resp.raw_output_contents.get(i) {
        let bytes: [u8; 8] = raw.get(..8)?.try_into().ok()?;
        return Some(i64::from_le_bytes(bytes));
    }
    resp.outputs[i]
        .contents
        .as_ref()
        .and_then(|c| c.int64_contents.first().copied())
}

/// The seq a sequence-gap error asks for (see [`crate::client::expected_seq`]), if it is one.
#[must_use]
pub fn expected_seq(e: &ClientError) -> Option<u64> {
    match e {
        ClientError::Status(s) => crate::client::expected_seq(s),
        _ => None,
    }
}

/// Runs the load until `warmup + duration` after `start` (or until `abort` turns true) and
/// waits for the requests still in flight. `t0 = start + warmup` is time zero of the history.
/// With several `clients` (one per region), each sends an equal share of the stateless rate
/// and session `s` goes through client `s % clients.len()`.
///
/// # Panics
///
/// If `clients` is empty.
pub async fn run(
    clients: Vec<FudoClient>,
    spec: LoadSpec,
    dims: ModelDims,
    start: Instant,
    history: History,
    abort: watch::Receiver<bool>,
) {
    let t0 = start + spec.warmup;
    let load = Arc::new(Gen {
        end: t0 + spec.duration,
        clients,
        spec,
        history,
        t0,
        next_id: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    assert!(!load.clients.is_empty(), "the load needs a client");
    if load.spec.stateless_rate() > 0.0 {
        for c in 0..load.clients.len() {
            tasks.spawn(stateless(
                load.clone(),
                c,
                dims.stateless_obs,
                start,
                abort.clone(),
            ));
        }
    }
    for s in 0..load.spec.sessions {
        tasks.spawn(session(
            load.clone(),
            s,
            dims.recurrent_obs,
            start,
            abort.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

async fn stateless(
    load: Arc<Gen>,
    client: usize,
    obs_dim: usize,
    start: Instant,
    abort: watch::Receiver<bool>,
) {
    let pool = ObsPool::new(load.spec.seed, 1, obs_dim);
    let clients = load.clients.len().max(1);
    let interval = Duration::from_secs_f64(clients as f64 / load.spec.stateless_rate());
    // Interleave the clients' schedules.
    let start = start + interval.mul_f64(client as f64 / clients as f64);
    let mut inflight = tokio::task::JoinSet::new();
    for k in 0u64.. {
        let Ok(k32) = u32::try_from(k) else { break };
        let n = k * clients as u64 + client as u64;
        let at = start + interval * k32;
        if at >= load.end || *abort.borrow() {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let req = build_request(
            &load.spec.stateless_model,
            &pool,
            n,
            format!("chaos-{n}"),
            None,
        );
        let g = load.clone();
        inflight.spawn(async move {
            let result = g.clients[client].infer(req).await;
            g.record("stateless".into(), OpKind::Infer, None, at, &result);
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

async fn session(
    load: Arc<Gen>,
    s: usize,
    obs_dim: usize,
    start: Instant,
    abort: watch::Receiver<bool>,
) {
    let pool = session_pool(load.spec.seed, s, obs_dim);
    let id = SESSION_ID_BASE + i64::try_from(s).unwrap_or(0);
    let key = id.to_string();
    let process = format!("session-{s}");
    let client = &load.clients[s % load.clients.len()];
    let period = Duration::from_secs_f64(1.0 / load.spec.session_rate);
    // Stagger the sessions over one period so they do not step in lock-step.
    let offset = period.mul_f64(s as f64 / load.spec.sessions.max(1) as f64);
    let mut next_at = start + offset;
    let mut seq: u64 = 1;
    loop {
        if next_at >= load.end || *abort.borrow() {
            break;
        }
        tokio::time::sleep_until(next_at.into()).await;
        let step = SequenceStep {
            sequence_id: id,
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            start: seq == 1,
            end: false,
        };
        let req = build_request(
            &load.spec.recurrent_model,
            &pool,
            seq,
            format!("{process}-{seq}"),
            Some(step),
        );
        let sent = Instant::now();
        let result = client.infer_session(&key, req).await;
        load.record(process.clone(), OpKind::Step, Some(seq), sent, &result);
        match &result {
            Ok(_) => {
                seq += 1;
                next_at += period;
                // Behind schedule (a slow step): step again at once, but do not burst.
                next_at = next_at.max(Instant::now());
            }
            Err(e) => match expected_seq(e) {
                Some(expected) if expected < seq => {
                    tracing::info!(
                        session = s,
                        seq,
                        expected,
                        "node is behind; resending from its seq"
                    );
                    seq = expected;
                }
                _ => next_at = Instant::now() + Duration::from_millis(10),
            },
        }
    }
    client.end_session(&key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::inference::model_infer_response::InferOutputTensor;

    #[test]
    fn gap_errors_name_the_seq_to_resend() {
        let e = ClientError::Status(tonic::Status::failed_precondition(
            "session \"7\": sequence gap: expected seq 41 (last seq + 1) but got 43; resend",
        ));
        assert_eq!(expected_seq(&e), Some(41));
        let other = ClientError::Status(tonic::Status::unavailable("expected seq 41"));
        assert_eq!(expected_seq(&other), None);
    }

    #[test]
    fn the_first_action_is_read_from_raw_contents() {
        let resp = ModelInferResponse {
            outputs: vec![
                InferOutputTensor {
                    name: "logits".into(),
                    ..Default::default()
                },
                InferOutputTensor {
                    name: ACTION_OUTPUT.into(),
                    ..Default::default()
                },
            ],
            raw_output_contents: vec![vec![0; 12], 3i64.to_le_bytes().to_vec()],
            ..Default::default()
        };
        assert_eq!(first_action(&resp), Some(3));
    }

    #[test]
    fn session_pools_differ_by_session_and_repeat_by_seed() {
        let a = session_pool(7, 0, 4);
        let b = session_pool(7, 1, 4);
        assert_ne!(a.payload(1), b.payload(1));
        assert_eq!(session_pool(7, 0, 4).payload(5), a.payload(5));
    }
}
