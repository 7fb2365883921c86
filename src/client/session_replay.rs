//! The client's replay buffer for recurrent sessions. Every answered step stays buffered until
//! the server reports it durable (`durable_watermark`); when a session moves to a node whose
//! stored snapshot is behind the last answered step (the old node died, froze or was cut off
//! before its write reached the store), that node answers FAILED_PRECONDITION with the seq it
//! expects, and the client resends the buffered steps from there before the current one. The
//! server's idempotent `(session, seq)` steps make the resend safe, and the same observations
//! through the same model give the same actions.

use std::collections::VecDeque;

use tonic::{Code, Status};

use crate::api::proto::inference::{
    ModelInferRequest, ModelInferResponse, infer_parameter::ParameterChoice,
};

/// Metadata key with which fudo's FAILED_PRECONDITION for a sequence gap names the seq to send.
pub const EXPECTED_SEQ_METADATA: &str = "fudo-expected-seq";

/// Steps answered but not yet durable, for one session.
#[derive(Debug, Default)]
pub struct ReplayBuffer {
    steps: VecDeque<(u64, ModelInferRequest)>,
}

impl ReplayBuffer {
    /// Records an answered step and drops every step at or below `watermark - margin` (the
    /// margin covers asynchronous replication to another region); keeps at most `limit` steps
    /// (the oldest go first: a failover that needs them will fail).
    pub fn record(
        &mut self,
        seq: u64,
        req: ModelInferRequest,
        watermark: u64,
        margin: usize,
        limit: usize,
    ) {
        self.steps.retain(|(s, _)| *s != seq);
        self.steps.push_back((seq, req));
        let keep_above = watermark.saturating_sub(margin as u64);
        while self.steps.front().is_some_and(|(s, _)| *s <= keep_above) {
            self.steps.pop_front();
        }
        while self.steps.len() > limit {
            self.steps.pop_front();
        }
    }

    /// The buffered requests for seqs `from..to`, in order, if every one of them is there.
    #[must_use]
    pub fn range(&self, from: u64, to: u64) -> Option<Vec<ModelInferRequest>> {
        let out: Vec<ModelInferRequest> = (from..to)
            .map(|seq| {
                self.steps
                    .iter()
                    .find(|(s, _)| *s == seq)
                    .map(|(_, r)| r.clone())
            })
            .collect::<Option<_>>()?;
        (!out.is_empty()).then_some(out)
    }

    /// Steps buffered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.steps.len()
    }
}

fn int_param(
    params: &std::collections::HashMap<String, crate::api::proto::inference::InferParameter>,
    name: &str,
) -> Option<u64> {
    match params.get(name)?.parameter_choice.as_ref()? {
        ParameterChoice::Int64Param(v) => u64::try_from(*v).ok(),
        ParameterChoice::Uint64Param(v) => Some(*v),
        _ => None,
    }
}

/// The request's `sequence_seq`.
#[must_use]
pub fn request_seq(req: &ModelInferRequest) -> Option<u64> {
    int_param(&req.parameters, crate::api::sequence::SEQUENCE_SEQ)
}

/// The response's `durable_watermark` (0 when absent).
#[must_use]
pub fn response_watermark(resp: &ModelInferResponse) -> u64 {
    int_param(&resp.parameters, crate::api::sequence::DURABLE_WATERMARK).unwrap_or(0)
}

/// `req` with `fudo_min_epoch` set to `epoch`, the newest owner epoch seen for its session
/// (unchanged when none was seen).
#[must_use]
pub fn with_min_epoch(mut req: ModelInferRequest, epoch: u64) -> ModelInferRequest {
    if epoch > 0 {
        req.parameters.insert(
            crate::api::sequence::MIN_EPOCH.into(),
            crate::api::sequence::int_param(epoch),
        );
    }
    req
}

/// The response's `owner_epoch` (0 when absent: the node has no leases).
#[must_use]
pub fn response_owner_epoch(resp: &ModelInferResponse) -> u64 {
    int_param(&resp.parameters, crate::api::sequence::OWNER_EPOCH).unwrap_or(0)
}

/// The seq a FAILED_PRECONDITION asks the client to send: the `fudo-expected-seq` metadata, or
/// (from older servers) the "expected seq N" in the message.
#[must_use]
pub fn expected_seq(status: &Status) -> Option<u64> {
    if status.code() != Code::FailedPrecondition {
        return None;
    }
    if let Some(v) = status.metadata().get(EXPECTED_SEQ_METADATA) {
        return v.to_str().ok()?.parse().ok();
    }
    let m = status.message();
    let rest = &m[m.find("expected seq ")? + "expected seq ".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{proto::inference::InferParameter, sequence};

    fn step(seq: u64) -> ModelInferRequest {
        let mut req = ModelInferRequest {
            id: format!("step-{seq}"),
            ..Default::default()
        };
        req.parameters.insert(
            sequence::SEQUENCE_SEQ.into(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64Param(seq as i64)),
            },
        );
        req
    }

    #[test]
    fn steps_leave_the_buffer_once_durable() {
        let mut b = ReplayBuffer::default();
        for seq in 1..=5 {
            b.record(seq, step(seq), seq.saturating_sub(2), 0, 64);
        }
        // Watermark 3 after step 5: steps 4 and 5 remain.
        assert_eq!(b.len(), 2);
        let ids: Vec<String> = b
            .range(4, 6)
            .expect("both buffered")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["step-4", "step-5"]);
        assert!(b.range(3, 6).is_none(), "step 3 is durable and gone");
        assert!(b.range(5, 5).is_none(), "nothing to resend");
    }

    #[test]
    fn a_margin_keeps_durable_steps_for_a_lagging_region() {
        let mut b = ReplayBuffer::default();
        for seq in 1..=10 {
            b.record(seq, step(seq), seq, 3, 64);
        }
        // Watermark 10, margin 3: steps 8, 9 and 10 stay for a replica that is behind.
        assert_eq!(b.len(), 3);
        assert!(b.range(8, 11).is_some());
        assert!(b.range(7, 11).is_none());
    }

    #[test]
    fn the_buffer_is_bounded_and_a_retried_seq_is_kept_once() {
        let mut b = ReplayBuffer::default();
        for seq in 1..=10 {
            b.record(seq, step(seq), 0, 0, 4);
        }
        b.record(10, step(10), 0, 0, 4);
        assert_eq!(b.len(), 4);
        assert!(b.range(7, 11).is_some());
        assert!(b.range(6, 11).is_none());
    }

    #[test]
    fn the_expected_seq_comes_from_metadata_or_the_message() {
        let mut s = Status::failed_precondition("gap");
        s.metadata_mut()
            .insert(EXPECTED_SEQ_METADATA, "41".parse().expect("ascii"));
        assert_eq!(expected_seq(&s), Some(41));
        let s =
            Status::failed_precondition("sequence gap: expected seq 7 (last seq + 1) but got 9");
        assert_eq!(expected_seq(&s), Some(7));
        assert_eq!(expected_seq(&Status::unavailable("expected seq 7")), None);
        assert_eq!(request_seq(&step(12)), Some(12));
    }
}
