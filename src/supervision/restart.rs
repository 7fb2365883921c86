//! Restart types: whether a child that exited is started again.
//!
//! OTP distinguishes three kinds of child. A *permanent* child is always restarted, a
//! *transient* child only when it died abnormally (panic, error, kill), and a *temporary* child
//! never; it is removed from its supervisor when it exits. ractor reports exits as
//! [`SupervisionEvent`]s; [`classify_exit`] turns one into the [`Exit`] that this decision needs.

use ractor::{ActorCell, SupervisionEvent};
use serde::{Deserialize, Serialize};

/// Reasons ractor gives for a terminated actor that did not stop on its own accord.
///
/// ractor reports a killed actor (and one whose task was cancelled) as `ActorTerminated`, not as
/// `ActorFailed`; OTP treats `killed` as abnormal, and so do we.
const ABNORMAL_TERMINATION_REASONS: [&str; 2] = ["killed", "actor_task_cancelled"];

/// When a supervised child is restarted after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted, whatever the exit reason.
    Permanent,
    /// Restarted only after an abnormal exit (panic, error, kill).
    Transient,
    /// Never restarted; removed from the supervisor when it exits.
    Temporary,
}

impl RestartType {
    /// Whether a child of this type is restarted after an exit of the given kind.
    pub fn should_restart(self, kind: ExitKind) -> bool {
        match self {
            Self::Permanent => true,
            Self::Transient => kind == ExitKind::Abnormal,
            Self::Temporary => false,
        }
    }

    /// Whether a child of this type is forgotten by its supervisor once it is not running.
    pub fn is_removed_on_exit(self) -> bool {
        self == Self::Temporary
    }
}

/// Whether an exit was expected by the child itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// The child stopped itself (or was stopped) cleanly.
    Normal,
    /// The child panicked, returned an error, or was killed.
    Abnormal,
}

impl ExitKind {
    /// `true` for [`ExitKind::Abnormal`].
    pub fn is_abnormal(self) -> bool {
        self == Self::Abnormal
    }
}

/// One observed exit of a child: its kind and a human-readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Normal or abnormal.
    pub kind: ExitKind,
    /// The reason as ractor reported it (panic message, error, stop reason), or `"normal"`.
    pub reason: String,
}

impl Exit {
    /// An abnormal exit with the given reason.
    pub fn abnormal(reason: impl Into<String>) -> Self {
        Self {
            kind: ExitKind::Abnormal,
            reason: reason.into(),
        }
    }

    /// A normal exit with the given reason.
    pub fn normal(reason: impl Into<String>) -> Self {
        Self {
            kind: ExitKind::Normal,
            reason: reason.into(),
        }
    }
}

/// Turns a ractor supervision event into the exited actor and its [`Exit`].
///
/// Returns `None` for events that are not exits (`ActorStarted`, process-group changes).
pub fn classify_exit(event: &SupervisionEvent) -> Option<(ActorCell, Exit)> {
    match event {
        SupervisionEvent::ActorFailed(cell, err) => {
            Some((cell.clone(), Exit::abnormal(err.to_string())))
        }
        SupervisionEvent::ActorTerminated(cell, _, reason) => {
            let exit = match reason.as_deref() {
                Some(r) if ABNORMAL_TERMINATION_REASONS.contains(&r) => Exit::abnormal(r),
                Some(r) => Exit::normal(r),
                None => Exit::normal("normal"),
            };
            Some((cell.clone(), exit))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_always_restarts() {
        assert!(RestartType::Permanent.should_restart(ExitKind::Normal));
        assert!(RestartType::Permanent.should_restart(ExitKind::Abnormal));
        assert!(!RestartType::Permanent.is_removed_on_exit());
    }

    #[test]
    fn transient_restarts_only_on_abnormal_exit() {
        assert!(!RestartType::Transient.should_restart(ExitKind::Normal));
        assert!(RestartType::Transient.should_restart(ExitKind::Abnormal));
        assert!(!RestartType::Transient.is_removed_on_exit());
    }

    #[test]
    fn temporary_never_restarts_and_is_removed() {
        assert!(!RestartType::Temporary.should_restart(ExitKind::Normal));
        assert!(!RestartType::Temporary.should_restart(ExitKind::Abnormal));
        assert!(RestartType::Temporary.is_removed_on_exit());
    }

    #[test]
    fn restart_type_parses_from_snake_case() {
        let parsed: RestartType = serde_json::from_str("\"transient\"").expect("valid json");
        assert_eq!(parsed, RestartType::Transient);
    }
}
