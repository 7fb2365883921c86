//! Triton's sequence parameters, which drive recurrent sessions: `sequence_id` (string or
//! integer; 0 or empty means none), `sequence_start`, `sequence_end`, plus fudo's
//! `sequence_seq`: the 1-based step number that makes a retried step idempotent (a repeated
//! `(sequence_id, sequence_seq)` returns the stored answer instead of stepping again).

use std::collections::HashMap;

use super::proto::inference::{InferParameter, infer_parameter::ParameterChoice};

/// Parameter naming the session.
pub const SEQUENCE_ID: &str = "sequence_id";
/// Parameter marking a session's first step.
pub const SEQUENCE_START: &str = "sequence_start";
/// Parameter marking a session's last step.
pub const SEQUENCE_END: &str = "sequence_end";
/// fudo's step-number parameter.
pub const SEQUENCE_SEQ: &str = "sequence_seq";
/// Response parameter: the highest step whose state the session store has made durable.
pub const DURABLE_WATERMARK: &str = "durable_watermark";
/// Request parameter the client library sends with a session step: the newest owner epoch it
/// has seen for the session. A node holding the session under an older epoch takes it over
/// again from the store before it answers (or fails the step with UNAVAILABLE).
pub const MIN_EPOCH: &str = "fudo_min_epoch";
/// Response parameter: the owner epoch (lease fencing token) under which the answering node
/// holds the session; it only grows across owners, so a smaller one means a stale owner.
pub const OWNER_EPOCH: &str = "owner_epoch";
/// Response parameter: the node and shard that computed the answer (`<node>/<model>/shard-i`).
pub const SERVED_BY: &str = "served_by";
/// Response parameter: whether the answer is a stored one returned for a retried step.
pub const REPLAYED: &str = "replayed";

/// The sequence parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequenceParams {
    /// The session, if the request belongs to one.
    pub id: Option<String>,
    /// First step.
    pub start: bool,
    /// Last step.
    pub end: bool,
    /// Step number, if the client sent one.
    pub seq: Option<u64>,
    /// The newest owner epoch the client has seen (0: none).
    pub min_epoch: u64,
}

/// Reads the sequence parameters; the error says which parameter was malformed.
pub fn parse(params: &HashMap<String, InferParameter>) -> Result<SequenceParams, String> {
    let choice = |name: &str| params.get(name).and_then(|p| p.parameter_choice.as_ref());
    let id = match choice(SEQUENCE_ID) {
        None => None,
        Some(ParameterChoice::StringParam(s)) if s.is_empty() => None,
        Some(ParameterChoice::StringParam(s)) => Some(s.clone()),
        Some(ParameterChoice::Int64Param(0)) | Some(ParameterChoice::Uint64Param(0)) => None,
        Some(ParameterChoice::Int64Param(v)) if *v > 0 => Some(v.to_string()),
        Some(ParameterChoice::Uint64Param(v)) => Some(v.to_string()),
        Some(other) => {
            return Err(format!(
                "parameter `{SEQUENCE_ID}` must be a non-empty string or a positive integer, got {other:?}"
            ));
        }
    };
    let flag = |name: &str| match choice(name) {
        None => Ok(false),
        Some(ParameterChoice::BoolParam(b)) => Ok(*b),
        Some(other) => Err(format!("parameter `{name}` must be a bool, got {other:?}")),
    };
    let seq = match choice(SEQUENCE_SEQ) {
        None => None,
        Some(ParameterChoice::Int64Param(v)) if *v >= 1 => Some(*v as u64),
        Some(ParameterChoice::Uint64Param(v)) if *v >= 1 => Some(*v),
        Some(other) => {
            return Err(format!(
                "parameter `{SEQUENCE_SEQ}` must be an integer >= 1 (the 1-based step number), got {other:?}"
            ));
        }
    };
    let min_epoch = match choice(MIN_EPOCH) {
        None => 0,
        Some(ParameterChoice::Int64Param(v)) if *v >= 0 => *v as u64,
        Some(ParameterChoice::Uint64Param(v)) => *v,
        Some(other) => {
            return Err(format!(
                "parameter `{MIN_EPOCH}` must be an integer >= 0 (the newest owner_epoch seen), got {other:?}"
            ));
        }
    };
    let parsed = SequenceParams {
        id,
        start: flag(SEQUENCE_START)?,
        end: flag(SEQUENCE_END)?,
        seq,
        min_epoch,
    };
    if parsed.id.is_none() && (parsed.start || parsed.end || parsed.seq.is_some()) {
        return Err(format!(
            "`{SEQUENCE_START}`, `{SEQUENCE_END}` and `{SEQUENCE_SEQ}` need a `{SEQUENCE_ID}`"
        ));
    }
    Ok(parsed)
}

/// An int64 parameter for a response.
pub fn int_param(v: u64) -> InferParameter {
    InferParameter {
        parameter_choice: Some(ParameterChoice::Int64Param(
            i64::try_from(v).unwrap_or(i64::MAX),
        )),
    }
}

/// A string parameter for a response.
pub fn string_param(v: impl Into<String>) -> InferParameter {
    InferParameter {
        parameter_choice: Some(ParameterChoice::StringParam(v.into())),
    }
}

/// A bool parameter for a response.
pub fn bool_param(v: bool) -> InferParameter {
    InferParameter {
        parameter_choice: Some(ParameterChoice::BoolParam(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: ParameterChoice) -> InferParameter {
        InferParameter {
            parameter_choice: Some(c),
        }
    }

    #[test]
    fn triton_forms_parse() {
        let mut m = HashMap::new();
        assert_eq!(parse(&m), Ok(SequenceParams::default()));
        m.insert(SEQUENCE_ID.into(), p(ParameterChoice::Int64Param(42)));
        m.insert(SEQUENCE_START.into(), p(ParameterChoice::BoolParam(true)));
        m.insert(SEQUENCE_SEQ.into(), p(ParameterChoice::Int64Param(1)));
        let s = parse(&m).expect("parse");
        assert_eq!(s.id.as_deref(), Some("42"));
        assert!(s.start && !s.end);
        assert_eq!(s.seq, Some(1));
        m.insert(
            SEQUENCE_ID.into(),
            p(ParameterChoice::StringParam("acct-7".into())),
        );
        assert_eq!(parse(&m).expect("string id").id.as_deref(), Some("acct-7"));
        assert_eq!(parse(&m).expect("no epoch").min_epoch, 0);
        m.insert(MIN_EPOCH.into(), p(ParameterChoice::Int64Param(9)));
        assert_eq!(parse(&m).expect("epoch").min_epoch, 9);
        m.insert(MIN_EPOCH.into(), p(ParameterChoice::Int64Param(-1)));
        assert!(parse(&m).unwrap_err().contains(MIN_EPOCH));
    }

    #[test]
    fn malformed_parameters_are_named() {
        let mut m = HashMap::new();
        m.insert(SEQUENCE_START.into(), p(ParameterChoice::BoolParam(true)));
        assert!(parse(&m).unwrap_err().contains(SEQUENCE_ID));
        m.insert(SEQUENCE_ID.into(), p(ParameterChoice::BoolParam(true)));
        assert!(parse(&m).unwrap_err().contains(SEQUENCE_ID));
        m.insert(SEQUENCE_ID.into(), p(ParameterChoice::Int64Param(3)));
        m.insert(SEQUENCE_SEQ.into(), p(ParameterChoice::Int64Param(0)));
        assert!(parse(&m).unwrap_err().contains(SEQUENCE_SEQ));
        m.insert(SEQUENCE_SEQ.into(), p(ParameterChoice::Int64Param(2)));
        m.insert(
            SEQUENCE_END.into(),
            p(ParameterChoice::StringParam("yes".into())),
        );
        assert!(parse(&m).unwrap_err().contains(SEQUENCE_END));
    }
}
