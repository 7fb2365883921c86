//! TLS for the Redis session store: the `rediss://` client, and the private CA an operator can
//! trust instead of the built-in roots (`sessions.redis_ca_file`).
//!
//! The redis crate does TLS through rustls (features `tokio-rustls-comp` and
//! `tls-rustls-webpki-roots`): a `rediss://` URL is verified against the Mozilla root
//! programme compiled into the binary (webpki-roots), which includes the Amazon roots that AWS
//! ElastiCache's in-transit-encryption certificates chain to, so no system CA bundle is needed
//! at run time. With a CA file those roots are *replaced* by the file's certificates, so a
//! private deployment trusts exactly its own CA. The server name is always checked against the
//! certificate (the crate's `#insecure` URL fragment is not compiled in).
//!
//! Only a single-server URL can use TLS: the `redis+sentinel://` form talks plain TCP to the
//! sentinels and to the primary they name.

use std::path::Path;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::StoreError;
use super::redis_target::{RedisTarget, redact_url};

/// Reads `path`, a PEM file of one or more CA certificates, and checks that every certificate
/// in it parses and can serve as a trust anchor. Returns the file's bytes, as the redis crate
/// takes them.
pub fn load_ca_file(path: &Path) -> Result<Vec<u8>, StoreError> {
    let bad = |reason: String| StoreError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad("does not exist".to_owned()),
        _ => bad(format!("cannot be read: {e}")),
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| bad(format!("is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            bad(format!(
                "certificate #{} is not a usable CA certificate: {e}",
                i + 1
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(bad(
            "holds no PEM certificate (expected one or more `-----BEGIN CERTIFICATE-----` blocks)"
                .to_owned(),
        ));
    }
    Ok(pem)
}

/// The CA certificates to trust for `target`, read from `ca_file`: the file must be a usable
/// PEM file (see [`load_ca_file`]) and the target a single-server `rediss://` URL, since the
/// Sentinel form is plain TCP only. The one place that rule is decided: the store asks here
/// when it is created, and so does the configuration check at start.
pub fn ca_for(target: &RedisTarget, ca_file: &Path) -> Result<Vec<u8>, StoreError> {
    let tls = match target {
        RedisTarget::Direct(url) => is_tls(&connection_info(url)?),
        RedisTarget::Sentinel { .. } => false,
    };
    if !tls {
        return Err(StoreError::InvalidUrl {
            url: target.to_string(),
            reason: "a CA file (sessions.redis_ca_file) is set, but this is not a rediss:// URL \
                     (Redis Sentinel is plain TCP only); TLS and its CA file are only for a \
                     single-server rediss://[user]:password@host:port/db URL"
                .to_owned(),
        });
    }
    load_ca_file(ca_file)
}

/// The client for a single-server URL: plain, or TLS for `rediss://`, trusting `root_cert`
/// (from [`ca_for`]) instead of the built-in roots when given. Errors name the URL only in its
/// redacted form.
pub(super) fn direct_client(
    url: &str,
    root_cert: Option<Vec<u8>>,
) -> Result<redis::Client, StoreError> {
    let info = connection_info(url)?;
    if is_tls(&info) {
        install_crypto_provider();
    }
    Ok(match root_cert {
        None => redis::Client::open(info)?,
        Some(root_cert) => redis::Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            },
        )?,
    })
}

/// `url` as the redis crate reads it; an error names the URL only in its redacted form.
fn connection_info(url: &str) -> Result<ConnectionInfo, StoreError> {
    url.into_connection_info()
        .map_err(|e| StoreError::InvalidUrl {
            url: redact_url(url),
            reason: e.to_string(),
        })
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// Makes ring the process-wide default crypto provider of rustls. The redis crate builds its
/// rustls config with the process default; rustls picks one by itself only while exactly one
/// provider is compiled in, so installing ring explicitly keeps `rediss://` working should
/// another crate ever enable aws-lc-rs too. A provider installed earlier (by anyone) is kept.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
