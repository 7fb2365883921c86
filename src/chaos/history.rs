//! The Jepsen-style history of a chaos run: one record per request — who sent it (the
//! "process": the stateless generator or one recurrent session), when it started and ended,
//! and what came back — written as JSON lines beside the report so that any claim in the
//! report can be re-derived from it.

use std::{
    io::{BufWriter, Write as _},
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};

/// Microseconds from `t0` (the end of warm-up) to `at`, negative before it: the history's
/// time axis.
#[must_use]
pub fn offset_us(at: std::time::Instant, t0: std::time::Instant) -> i64 {
    if at >= t0 {
        i64::try_from(at.duration_since(t0).as_micros()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from(t0.duration_since(at).as_micros()).unwrap_or(i64::MAX)
    }
}

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// A stateless inference.
    Infer,
    /// One step of a recurrent session.
    Step,
}

/// One request and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Unique, in issue order.
    pub id: u64,
    /// `stateless` or `session-<n>`.
    pub process: String,
    /// Inference or step.
    pub kind: OpKind,
    /// Step number, for steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Intended start (open-loop schedule), µs since the end of warm-up (negative in warm-up).
    pub start_us: i64,
    /// Completion, µs since the end of warm-up.
    pub end_us: i64,
    /// Whether a valid answer came back.
    pub ok: bool,
    /// `OK`, a gRPC code name, or a client-side reason.
    pub status: String,
    /// The error message, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The node and shard that answered (`served_by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// The action returned (first row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<i64>,
    /// Whether the server replayed a stored answer (a retried step).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// The owner epoch (lease fencing token) the answering node held the session under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_epoch: Option<u64>,
}

impl Op {
    /// Latency in milliseconds.
    #[must_use]
    pub fn latency_ms(&self) -> f64 {
        (self.end_us - self.start_us) as f64 / 1000.0
    }

    /// The node part of `served_by` (`<node>/<model>/shard-i`).
    #[must_use]
    pub fn node(&self) -> Option<&str> {
        self.served_by.as_deref().and_then(|s| s.split('/').next())
    }

    /// The model version that computed the answer (`<node>/<model>@<version>/shard-i`); none
    /// for a stored answer returned again (`<node>/session-table`).
    pub fn model_version(&self) -> Option<&str> {
        let actor = self.served_by.as_deref()?.split('/').nth(1)?;
        actor.split_once('@').map(|(_, version)| version)
    }
}

/// The history being recorded; clones share it.
#[derive(Debug, Clone, Default)]
pub struct History(Arc<Mutex<Vec<Op>>>);

impl History {
    /// Appends a record.
    pub fn push(&self, op: Op) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
    }

    /// A copy of every record so far, sorted by start time.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Op> {
        let mut ops = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        ops.sort_by_key(|o| (o.start_us, o.id));
        ops
    }

    /// The records appended at or after position `from` (in append order), and the position
    /// to ask from next time.
    #[must_use]
    pub fn since(&self, from: usize) -> (Vec<Op>, usize) {
        let ops = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let from = from.min(ops.len());
        (ops[from..].to_vec(), ops.len())
    }

    /// Records so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether nothing was recorded yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes `records` (the history's ops, or any other record) as JSON lines to `path`.
///
/// # Errors
///
/// I/O errors.
pub fn write_jsonl<T: Serialize>(path: &Path, records: &[T]) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads a history written by [`write_jsonl`].
///
/// # Errors
///
/// I/O errors and malformed lines (with the line number).
pub fn read_jsonl(path: &Path) -> std::io::Result<Vec<Op>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), i + 1),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_through_jsonl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let h = History::default();
        h.push(Op {
            id: 2,
            process: "session-1".into(),
            kind: OpKind::Step,
            seq: Some(3),
            start_us: 20,
            end_us: 1020,
            ok: true,
            status: "OK".into(),
            error: None,
            served_by: Some("tokyo-a-1/lstm_policy/shard-0".into()),
            action: Some(1),
            replayed: false,
            owner_epoch: None,
        });
        h.push(Op {
            id: 1,
            process: "stateless".into(),
            kind: OpKind::Infer,
            seq: None,
            start_us: -5,
            end_us: 100,
            ok: false,
            status: "UNAVAILABLE".into(),
            error: Some("node down".into()),
            served_by: None,
            action: None,
            replayed: false,
            owner_epoch: None,
        });
        let ops = h.snapshot();
        assert_eq!(ops[0].id, 1, "sorted by start");
        assert_eq!(ops[1].node(), Some("tokyo-a-1"));
        assert!((ops[1].latency_ms() - 1.0).abs() < 1e-9);
        write_jsonl(&path, &ops).expect("write");
        assert_eq!(read_jsonl(&path).expect("read"), ops);
    }
}
