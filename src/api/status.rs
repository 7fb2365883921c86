//! The one place where fudo's errors become gRPC statuses, so every path answers a given
//! failure the same way: bad input → INVALID_ARGUMENT, unknown model → NOT_FOUND, deadline →
//! DEADLINE_EXCEEDED, shed → RESOURCE_EXHAUSTED, draining → UNAVAILABLE.

use tonic::Status;

use super::tensor::TensorError;
use crate::{
    actors::InferError,
    sessions::{SessionError, StepError},
};

impl From<TensorError> for Status {
    fn from(err: TensorError) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

impl From<InferError> for Status {
    fn from(err: InferError) -> Self {
        let message = err.to_string();
        match err {
            InferError::QueueFull { .. } => Status::resource_exhausted(message),
            InferError::DeadlineUnmeetable { .. } | InferError::DeadlineExceeded { .. } => {
                Status::deadline_exceeded(message)
            }
            InferError::Draining(_) => Status::unavailable(message),
            InferError::ShardsFailed { .. } | InferError::Policy(_) => Status::internal(message),
        }
    }
}

impl From<SessionError> for Status {
    fn from(err: SessionError) -> Self {
        let message = err.to_string();
        // The seq to send next, machine-readable, so clients can replay without parsing text.
        let expected = match &err {
            SessionError::SeqGap { expected, .. } => Some(*expected),
            SessionError::NotStarted { .. } => Some(1),
            _ => None,
        };
        match err {
            SessionError::Store { .. } => Status::unavailable(message),
            _ => {
                let mut status = Status::failed_precondition(message);
                if let Some(seq) = expected
                    && let Ok(v) = seq.to_string().parse()
                {
                    status
                        .metadata_mut()
                        .insert(crate::client::EXPECTED_SEQ_METADATA, v);
                }
                status
            }
        }
    }
}

impl From<StepError<InferError>> for Status {
    fn from(err: StepError<InferError>) -> Self {
        match err {
            StepError::Session(e) => e.into(),
            StepError::Infer(e) => e.into(),
        }
    }
}

/// NOT_FOUND for a model or version this node does not serve.
pub fn model_not_found(name: &str, version: &str, served: &[String]) -> Status {
    if version.is_empty() {
        Status::not_found(format!(
            "model `{name}` is not served here; models: {served:?}"
        ))
    } else {
        Status::not_found(format!(
            "model `{name}` version `{version}` is not served here; models: {served:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_failure_has_its_code() {
        let cases = [
            (
                InferError::QueueFull {
                    model: "m".into(),
                    queued: 1,
                    capacity: 1,
                },
                Code::ResourceExhausted,
            ),
            (
                InferError::DeadlineUnmeetable {
                    budget_us: 1,
                    estimate_us: 2,
                },
                Code::DeadlineExceeded,
            ),
            (
                InferError::DeadlineExceeded { waited_us: 1 },
                Code::DeadlineExceeded,
            ),
            (InferError::Draining("m".into()), Code::Unavailable),
            (InferError::ShardsFailed { attempts: 3 }, Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
        assert_eq!(
            Status::from(TensorError::Datatype("INT8".into())).code(),
            Code::InvalidArgument
        );
        assert_eq!(model_not_found("x", "", &[]).code(), Code::NotFound);
    }

    #[test]
    fn a_sequence_gap_names_the_seq_to_resend_in_metadata() {
        let gap = Status::from(SessionError::SeqGap {
            session: "s".into(),
            expected: 41,
            got: 43,
        });
        assert_eq!(gap.code(), Code::FailedPrecondition);
        let seq = gap.metadata().get(crate::client::EXPECTED_SEQ_METADATA);
        assert_eq!(seq.and_then(|v| v.to_str().ok()), Some("41"));
        let unknown = Status::from(SessionError::NotStarted {
            session: "s".into(),
        });
        let seq = unknown.metadata().get(crate::client::EXPECTED_SEQ_METADATA);
        assert_eq!(seq.and_then(|v| v.to_str().ok()), Some("1"));
    }
}
