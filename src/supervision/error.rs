//! Errors of the supervision layer.
//!
//! A supervisor fails (and so escalates to its own supervisor) with one of these; they are also
//! returned to callers of the runtime child-management messages.

use std::time::Duration;

use ractor::SpawnErr;

/// Why a supervisor could not do what it was asked, or why it gave up.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A child's start function failed.
    #[error("supervisor {supervisor}: child {child} failed to start: {source}")]
    ChildStartFailed {
        /// The supervisor's name.
        supervisor: String,
        /// The child's id.
        child: String,
        /// ractor's spawn error.
        #[source]
        source: SpawnErr,
    },
    /// More than `max_restarts` restarts within `period`: the supervisor escalates.
    #[error(
        "supervisor {supervisor}: restart intensity exceeded (more than {max_restarts} restarts in {period:?})"
    )]
    IntensityExceeded {
        /// The supervisor's name.
        supervisor: String,
        /// The configured limit.
        max_restarts: u32,
        /// The configured window.
        period: Duration,
    },
    /// Two children share an id or a registered name.
    #[error("supervisor {supervisor}: duplicate child id or name {child}")]
    DuplicateChild {
        /// The supervisor's name.
        supervisor: String,
        /// The duplicated id or name.
        child: String,
    },
    /// No child with this id.
    #[error("supervisor {supervisor}: no child with id {child}")]
    UnknownChild {
        /// The supervisor's name.
        supervisor: String,
        /// The id asked for.
        child: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_supervisor_and_child() {
        let e = SupervisorError::ChildStartFailed {
            supervisor: "node".into(),
            child: "router".into(),
            source: SpawnErr::ActorAlreadyRegistered("node/router".into()),
        };
        let text = e.to_string();
        assert!(text.contains("node") && text.contains("router"), "{text}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
