//! What the durable store holds for a session, and its compact binary encoding.
//!
//! One snapshot per session (Redis key `fudo:session:{id}`), overwritten on every step; it
//! holds everything needed to continue the session elsewhere and to replay retained results.
//!
//! Encoding (all integers little-endian, floats IEEE-754 `f32` little-endian, strings as
//! `u32` byte length + UTF-8):
//!
//! ```text
//! magic  b"FSS"  version u8 = 2   flags u8 (bit 0: ended)
//! seq u64   model str   model_version str
//! state_len u32   state f32 × state_len
//! n_results u32   n × { seq u64, value f32, action i64, logits_len u32, logits f32 × len }
//! n_obs u32   n × { obs_len u32, obs f32 × len }          (version 2 only)
//! ```
//!
//! Version 1 (without the recent observations) is still read, as a session with none.

use std::collections::VecDeque;

use super::{StepOutput, StoreError};

const MAGIC: &[u8; 3] = b"FSS";
const VERSION: u8 = 2;
/// The first layout, without recent observations; still read.
const VERSION_1: u8 = 1;
const FLAG_ENDED: u8 = 1;

/// A recorded step result, kept for replays.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRecord {
    /// The seq that produced it.
    pub seq: u64,
    /// What it returned.
    pub output: StepOutput,
}

/// The full state of one session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSnapshot {
    /// Model the session is pinned to.
    pub model: String,
    /// Model version the session is pinned to.
    pub model_version: String,
    /// Last stepped seq; `state` is the state after it.
    pub seq: u64,
    /// The session was closed by its last step.
    pub ended: bool,
    /// Recurrent state after `seq`.
    pub state: Vec<f32>,
    /// The most recent results, oldest first, contiguous and ending at `seq`.
    pub results: VecDeque<StepRecord>,
    /// The observations of the most recent steps, oldest first, ending at `seq`: what a
    /// session replays to re-warm its state on another model version.
    pub recent_obs: VecDeque<Vec<f32>>,
}

impl SessionSnapshot {
    /// The recorded result of `seq`, if still retained.
    pub fn result(&self, seq: u64) -> Option<&StepOutput> {
        let first = self.results.front()?.seq;
        let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.results
            .get(idx)
            .filter(|r| r.seq == seq)
            .map(|r| &r.output)
    }

    /// Oldest seq whose result is retained (`seq + 1` when none is).
    pub fn oldest_retained(&self) -> u64 {
        self.results
            .front()
            .map_or(self.seq.saturating_add(1), |r| r.seq)
    }

    /// Encodes the snapshot (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let logits: usize = self.results.iter().map(|r| r.output.logits.len()).sum();
        let mut out = Vec::with_capacity(
            32 + self.model.len()
                + self.model_version.len()
                + 4 * self.state.len()
                + 24 * self.results.len()
                + 4 * logits
                + self
                    .recent_obs
                    .iter()
                    .map(|o| 4 + 4 * o.len())
                    .sum::<usize>(),
        );
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(if self.ended { FLAG_ENDED } else { 0 });
        out.extend_from_slice(&self.seq.to_le_bytes());
        put_str(&mut out, &self.model);
        put_str(&mut out, &self.model_version);
        put_f32s(&mut out, &self.state);
        put_len(&mut out, self.results.len());
        for r in &self.results {
            out.extend_from_slice(&r.seq.to_le_bytes());
            out.extend_from_slice(&r.output.value.to_le_bytes());
            out.extend_from_slice(&r.output.action.to_le_bytes());
            put_f32s(&mut out, &r.output.logits);
        }
        put_len(&mut out, self.recent_obs.len());
        for obs in &self.recent_obs {
            put_f32s(&mut out, obs);
        }
        out
    }

    /// Decodes bytes produced by [`SessionSnapshot::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader { buf: bytes };
        if r.take(3)? != MAGIC {
            return Err(StoreError::Decode(
                "not a fudo session snapshot (bad magic)".into(),
            ));
        }
        let version = r.u8()?;
        if version != VERSION && version != VERSION_1 {
            return Err(StoreError::Decode(format!(
                "unsupported snapshot version {version} (this build reads {VERSION_1} and {VERSION})"
            )));
        }
        let flags = r.u8()?;
        let seq = r.u64()?;
        let model = r.string()?;
        let model_version = r.string()?;
        let state = r.f32s()?;
        let n = r.len()?;
        let mut results = VecDeque::with_capacity(n.min(1024));
        for _ in 0..n {
            let seq = r.u64()?;
            let value = f32::from_le_bytes(r.array()?);
            let action = i64::from_le_bytes(r.array()?);
            let logits = r.f32s()?;
            results.push_back(StepRecord {
                seq,
                output: StepOutput {
                    logits,
                    value,
                    action,
                },
            });
        }
        let mut recent_obs = VecDeque::new();
        if version >= VERSION {
            let n = r.len()?;
            for _ in 0..n {
                recent_obs.push_back(r.f32s()?);
            }
        }
        if !r.buf.is_empty() {
            return Err(StoreError::Decode(format!(
                "{} trailing bytes",
                r.buf.len()
            )));
        }
        Ok(Self {
            model,
            model_version,
            seq,
            ended: flags & FLAG_ENDED != 0,
            state,
            results,
            recent_obs,
        })
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("snapshot field longer than u32::MAX");
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    put_len(out, v.len());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.buf.len() < n {
            return Err(StoreError::Decode("truncated snapshot".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn len(&mut self) -> Result<usize, StoreError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }
    fn string(&mut self) -> Result<String, StoreError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| StoreError::Decode("string field is not UTF-8".into()))
    }
    fn f32s(&mut self) -> Result<Vec<f32>, StoreError> {
        let n = self.len()?;
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| StoreError::Decode("float array length overflows".into()))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("chunk of 4")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionSnapshot {
        SessionSnapshot {
            model: "lstm-policy".into(),
            model_version: "v7".into(),
            seq: 12,
            ended: true,
            state: vec![0.5, -1.25, f32::MAX, f32::MIN_POSITIVE],
            results: (10..=12)
                .map(|seq| StepRecord {
                    seq,
                    output: StepOutput {
                        logits: vec![seq as f32, -0.5],
                        value: seq as f32 * 0.1,
                        action: seq as i64 - 11,
                    },
                })
                .collect(),
            recent_obs: VecDeque::from([vec![0.25, -0.5], vec![1.0, 2.0]]),
        }
    }

    #[test]
    fn roundtrips() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(&bytes[..3], b"FSS");
        assert_eq!(SessionSnapshot::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn reads_the_first_layout_as_a_session_without_recent_observations() {
        let mut s = sample();
        let mut bytes = s.encode();
        // Version 1 is version 2 without the observations block at the end.
        let obs_block: usize = 4 + s.recent_obs.iter().map(|o| 4 + 4 * o.len()).sum::<usize>();
        bytes.truncate(bytes.len() - obs_block);
        bytes[3] = 1;
        s.recent_obs.clear();
        assert_eq!(SessionSnapshot::decode(&bytes).unwrap(), s);
        bytes[3] = 3;
        let err = SessionSnapshot::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("unsupported snapshot version 3"), "{err}");
    }

    #[test]
    fn rejects_truncation_garbage_and_trailing_bytes() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(
                SessionSnapshot::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(SessionSnapshot::decode(&long).is_err());
        assert!(SessionSnapshot::decode(b"{\"json\":1}").is_err());
        let mut v9 = bytes;
        v9[3] = 9;
        let err = SessionSnapshot::decode(&v9).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
    }

    #[test]
    fn result_lookup_and_oldest() {
        let s = sample();
        assert_eq!(s.result(9), None);
        assert_eq!(s.result(10).unwrap().action, -1);
        assert_eq!(s.result(12).unwrap().action, 1);
        assert_eq!(s.result(13), None);
        assert_eq!(s.oldest_retained(), 10);
        let empty = SessionSnapshot {
            results: VecDeque::new(),
            ..s
        };
        assert_eq!(empty.oldest_retained(), 13);
    }
}
