//! Errors of the session table and of its stores.
//!
//! Every [`SessionError`] message says what was wrong and what the client should send instead;
//! the API layer maps them to gRPC statuses.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why a step was refused. Nothing about the session changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The request skipped seqs the session has not seen.
    #[error(
        "session {session:?}: sequence gap: expected seq {expected} (last seq + 1) but got {got}; \
         resend the missing steps starting at seq {expected}"
    )]
    SeqGap {
        /// Session id.
        session: String,
        /// The only seq that can be stepped now.
        expected: u64,
        /// The seq the request carried.
        got: u64,
    },
    /// The seq was already stepped but its result is no longer retained, so it cannot be
    /// replayed.
    #[error(
        "session {session:?}: seq {got} was already processed and its result is no longer \
         retained (oldest retained seq is {oldest_retained}); do not resend it, continue with \
         seq {next}"
    )]
    SeqStale {
        /// Session id.
        session: String,
        /// Oldest seq whose result can still be replayed.
        oldest_retained: u64,
        /// The seq the request carried.
        got: u64,
        /// The next seq the session accepts.
        next: u64,
    },
    /// Neither this node nor the durable store knows the session.
    #[error(
        "session {session:?} is not started (unknown here and in the durable store); send the \
         first step with sequence_start=true"
    )]
    NotStarted {
        /// Session id.
        session: String,
    },
    /// The session was closed by a step with `end` set.
    #[error(
        "session {session:?} ended at seq {last_seq}; send sequence_start=true with a seq above \
         {last_seq} to begin a new episode, or use a new session id"
    )]
    Ended {
        /// Session id.
        session: String,
        /// The final seq of the ended episode.
        last_seq: u64,
    },
    /// The request names another model or version than the one the session is pinned to.
    #[error(
        "session {session:?} is pinned to model {pinned}, but the request names {requested}; \
         send {pinned} for this session, or start a new session on {requested}"
    )]
    VersionMismatch {
        /// Session id.
        session: String,
        /// `model@version` the session is pinned to.
        pinned: String,
        /// `model@version` the request named.
        requested: String,
    },
    /// The recurrent state does not have the expected number of elements.
    #[error(
        "session {session:?}: recurrent state size mismatch: expected {expected} floats, got \
         {got} ({origin})"
    )]
    StateShape {
        /// Session id.
        session: String,
        /// Expected element count.
        expected: usize,
        /// Actual element count.
        got: usize,
        /// Which two sizes disagreed.
        origin: &'static str,
    },
    /// The session is not in memory and the durable store could not be read.
    #[error(
        "session {session:?}: the session is not in this node's memory and the session store \
         could not be read ({source}); retry the same step later"
    )]
    Store {
        /// Session id.
        session: String,
        /// The store failure.
        #[source]
        source: StoreError,
    },
}

/// A failure of a [`super::SessionStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The operation did not finish in time.
    #[error("{op} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        op: &'static str,
        /// The limit.
        after: Duration,
    },
    /// `sessions.redis_url` is not a valid Redis or Redis Sentinel URL (or does not fit the
    /// TLS settings).
    #[error("invalid redis url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, its password replaced by `***` (see
        /// [`super::redis_target::redact_url`]).
        url: String,
        /// What is wrong with it, and the expected form.
        reason: String,
    },
    /// The CA file to trust for `rediss://` (`sessions.redis_ca_file`) is missing, unreadable
    /// or holds no usable PEM certificate.
    #[error("redis CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No sentinel named a reachable primary for the monitored master.
    #[error("redis sentinel: no primary for master {master:?} could be reached: {detail}")]
    NoPrimary {
        /// The monitored master name.
        master: String,
        /// What each sentinel (and the primary it named) answered.
        detail: String,
    },
    /// The server a sentinel named is not (or no longer) a primary.
    #[error("redis at {addr} is a {role}, not a primary (failover in progress?)")]
    NotPrimary {
        /// `host:port` of the server.
        addr: String,
        /// The role it reported.
        role: String,
    },
    /// A stored snapshot could not be decoded.
    #[error("corrupt session snapshot: {0}")]
    Decode(String),
}

/// The error of [`super::SessionTable::step`]: either the session refused the step, or the
/// caller's `infer` failed (in which case nothing changed and the same seq can be retried).
#[derive(Debug)]
pub enum StepError<E> {
    /// The session table refused the step.
    Session(SessionError),
    /// The `infer` closure failed.
    Infer(E),
}

impl<E> From<SessionError> for StepError<E> {
    fn from(e: SessionError) -> Self {
        StepError::Session(e)
    }
}

impl<E: fmt::Display> fmt::Display for StepError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Session(e) => e.fmt(f),
            StepError::Infer(e) => write!(f, "inference failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for StepError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StepError::Session(e) => Some(e),
            StepError::Infer(e) => Some(e),
        }
    }
}
