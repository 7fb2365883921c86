//! The authentication hook of region links. A link presents credentials when it dials and the
//! answering node verifies them before it echoes a single heartbeat.
//!
//! Today the hook is a shared bearer token (`cluster.link_token`), compared in constant time;
//! the security issue plugs mutual TLS in behind the same trait (the peer certificate is on
//! the request). With no token configured, links are open, as the rest of the API is until
//! then.

use tonic::{Status, metadata::MetadataMap};

/// Credentials a link presents and the check a node applies to incoming links.
pub trait LinkAuth: Send + Sync + std::fmt::Debug {
    /// Adds this node's credentials to an outgoing link request.
    fn attach(&self, metadata: &mut MetadataMap);
    /// Checks an incoming link request; UNAUTHENTICATED with a reason when it fails.
    fn verify(&self, metadata: &MetadataMap) -> Result<(), Status>;
}

/// A shared bearer token; an empty token means no authentication.
#[derive(Clone)]
pub struct SharedToken {
    token: String,
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedToken")
            .field("enabled", &!self.token.is_empty())
            .finish()
    }
}

impl SharedToken {
    /// The hook for `token` (empty: open links).
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
        }
    }
}

impl LinkAuth for SharedToken {
    fn attach(&self, metadata: &mut MetadataMap) {
        if self.token.is_empty() {
            return;
        }
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            metadata.insert("authorization", value);
        }
    }

    fn verify(&self, metadata: &MetadataMap) -> Result<(), Status> {
        if self.token.is_empty() {
            return Ok(());
        }
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("region link without credentials: send `authorization: Bearer <cluster.link_token>`")
            })?;
        if constant_time_eq(presented.as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "region link token does not match this node's cluster.link_token",
            ))
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_wrong_or_missing_one_is_refused() {
        let auth = SharedToken::new("s3cret");
        let mut md = MetadataMap::new();
        assert_eq!(
            auth.verify(&md).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );
        auth.attach(&mut md);
        assert!(auth.verify(&md).is_ok());
        let mut wrong = MetadataMap::new();
        SharedToken::new("s3creT").attach(&mut wrong);
        let err = auth.verify(&wrong).expect_err("wrong token");
        assert!(err.message().contains("does not match"), "{err:?}");
        assert!(
            !format!("{auth:?}").contains("s3cret"),
            "the token is not logged"
        );
    }

    #[test]
    fn no_token_means_open_links() {
        let auth = SharedToken::new("");
        let mut md = MetadataMap::new();
        auth.attach(&mut md);
        assert!(md.is_empty());
        assert!(auth.verify(&md).is_ok());
    }
}
