//! The Redis session store over TLS with AUTH, as production runs it against AWS ElastiCache
//! (`rediss://:<token>@<primary-endpoint>:6379`), against a real `redis-server` that speaks
//! only TLS, with a CA and server certificate generated here (rcgen):
//!
//! - with `ca_file` (`sessions.redis_ca_file`) a session is written and read back over
//!   `rediss://:<token>@...` and over `rediss://user:pass@host:port/db`, and so does
//!   `fudo serve` configured with those two keys;
//! - a wrong password leaves the store degraded with an error that says so, and neither
//!   password appears in that error, in the store's `Debug` or in any log line;
//! - without the CA file (the built-in webpki roots only) the server's certificate is refused;
//! - a plain `redis://` URL to the TLS port does not connect;
//! - an unusable CA file, or one set for a URL without TLS, is refused at creation.
//!
//! Needs `redis-server` on PATH (built with TLS, as Debian's is). Without it the tests print a
//! skip notice and pass, unless `FUDO_REQUIRE_REDIS=1` (CI), where they fail.

#[path = "support/fudo_process.rs"]
mod fudo_process;
#[path = "support/oip_requests.rs"]
mod oip_requests;
#[path = "support/redis_process.rs"]
mod redis_process;
#[path = "support/session_steps.rs"]
mod session_steps;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fudo::api::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use fudo::sessions::{
    RedisStoreOptions, SessionConfig, SessionSnapshot, SessionStore, SessionTable, StoreError,
    StoreHealth,
};
use fudo_process::FudoProcess;
use oip_requests::{int_param, step_request};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis_process::{Redis, free_port, redis_server};
use session_steps::{DIM, fast_options, req, step};

/// The `requirepass` of the default user (what ElastiCache calls the AUTH token).
const TOKEN: &str = "tls-test-token-6c1f0e9a";
/// An ACL user and its password, for the `rediss://user:pass@host:port/db` form.
const USER: &str = "fudo";
const USER_PASSWORD: &str = "user-secret-93be27d4";
/// A password that is wrong; it must not leak either.
const WRONG: &str = "wrong-secret-0d5a7c31";

/// A TLS-only `redis-server` with a certificate for `localhost`/`127.0.0.1` signed by a
/// private CA, killed on drop.
struct TlsRedis {
    port: u16,
    /// The CA certificate (PEM).
    ca_file: PathBuf,
    _redis: Redis,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    /// `None` (after a skip notice) when `redis-server` is not on PATH and
    /// `FUDO_REQUIRE_REDIS` is unset.
    fn start() -> Option<Self> {
        let bin = redis_server()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_pem, cert_pem, key_pem) = certificates();
        let write = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        let ca_file = write("ca.pem", &ca_pem);
        let cert_file = write("server.pem", &cert_pem);
        let key_file = write("server.key", &key_pem);
        let port = free_port();
        let user_rule = format!(">{USER_PASSWORD}");
        let redis = Redis::start_tls(
            &bin,
            port,
            dir.path(),
            &[
                "--tls-cert-file",
                path_str(&cert_file),
                "--tls-key-file",
                path_str(&key_file),
                "--tls-ca-cert-file",
                path_str(&ca_file),
                "--tls-auth-clients",
                "no",
                "--requirepass",
                TOKEN,
                "--user",
                USER,
                "on",
                &user_rule,
                "~*",
                "&*",
                "+@all",
            ],
        );
        Some(Self {
            port,
            ca_file,
            _redis: redis,
            _dir: dir,
        })
    }

    /// `scheme://<userinfo>@127.0.0.1:<tls port>/<db>`.
    fn url(&self, scheme: &str, userinfo: &str, db: u32) -> String {
        format!("{scheme}://{userinfo}@127.0.0.1:{}/{db}", self.port)
    }

    fn options(&self, with_ca: bool) -> RedisStoreOptions {
        RedisStoreOptions {
            ca_file: with_ca.then(|| self.ca_file.clone()),
            ..fast_options()
        }
    }

    /// The snapshot of `session` as stored in database `db`, read with a separate TLS client.
    async fn stored(&self, db: u32, session: &str) -> Option<SessionSnapshot> {
        let url = self.url("rediss", &format!(":{TOKEN}"), db);
        let client = redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(&self.ca_file).expect("ca file")),
            },
        )
        .expect("tls client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect over tls");
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("fudo:session:{session}"))
            .query_async(&mut conn)
            .await
            .expect("GET");
        bytes.map(|b| SessionSnapshot::decode(&b).expect("decodable snapshot"))
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// (CA certificate, server certificate, server key), PEM. The server certificate names
/// `localhost` and `127.0.0.1` and is valid for server authentication.
fn certificates() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fudo test redis CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca.self_signed(&ca_key).expect("ca certificate");
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.use_authority_key_identifier_extension = true;
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}

/// Every log line of this test binary, to check that no password reaches one.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("fudo=debug")
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        logs
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Echoed to stderr too, so a failing test shows what the store logged.
        eprint!("{}", String::from_utf8_lossy(buf));
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_text() -> String {
    let logs = captured_logs().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&logs).into_owned()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, USER_PASSWORD, WRONG] {
        assert!(!text.contains(secret), "{what} shows a password: {text}");
    }
}

/// Waits until the store has tried to connect and failed; returns its health.
async fn degraded(store: &SessionStore) -> StoreHealth {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let health = store.health();
        if health.degraded && health.last_error.is_some() {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "the store never reported a failed connection: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Steps `session` 1..=3 through `store`, flushes, and continues it in a fresh table on a
/// fresh store of the same URL (so the state really came back from Redis over TLS).
async fn write_and_read_back(url: &str, opts: RedisStoreOptions, session: &str) {
    let store = SessionStore::redis(url, opts.clone()).await.expect("store");
    assert!(!store.health().degraded, "{:?}", store.health());
    let t1 = SessionTable::new(store.clone(), SessionConfig::default());
    step(&t1, req(session, Some(1), true)).await;
    step(&t1, req(session, None, false)).await;
    let third = step(&t1, req(session, None, false)).await;
    store
        .flush(Duration::from_secs(5))
        .await
        .expect("flushed over tls");
    let health = store.health();
    assert_eq!(
        (health.degraded, health.buffered_writes, health.last_error),
        (false, 0, None)
    );
    drop(t1);
    drop(store);

    let store = SessionStore::redis(url, opts).await.expect("store");
    let t2 = SessionTable::new(store, SessionConfig::default());
    let replay = step(&t2, req(session, Some(3), false)).await;
    assert!(replay.replayed);
    assert_eq!(replay.output, third.output);
    assert_eq!(replay.durable_watermark, 3, "acknowledged by redis");
    let fourth = step(&t2, req(session, None, false)).await;
    assert_eq!((fourth.seq, fourth.output.action), (4, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_tls_with_auth_and_a_private_ca() {
    captured_logs();
    let Some(redis) = TlsRedis::start() else {
        return;
    };

    // The ElastiCache form: AUTH token only, database 0.
    let url = redis.url("rediss", &format!(":{TOKEN}"), 0);
    write_and_read_back(&url, redis.options(true), "tls-token").await;
    let snap = redis
        .stored(0, "tls-token")
        .await
        .expect("snapshot in db 0");
    assert_eq!((snap.seq, snap.state.clone()), (4, vec![4.0; DIM]));

    // An ACL user with a password, and a database.
    let url = redis.url("rediss", &format!("{USER}:{USER_PASSWORD}"), 3);
    write_and_read_back(&url, redis.options(true), "tls-user").await;
    assert!(redis.stored(3, "tls-user").await.is_some(), "in db 3");
    assert!(redis.stored(0, "tls-user").await.is_none(), "not in db 0");

    assert_no_secret("the logs", &logs_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error_without_the_password() {
    captured_logs();
    let Some(redis) = TlsRedis::start() else {
        return;
    };
    for userinfo in [format!(":{WRONG}"), format!("{USER}:{WRONG}")] {
        let url = redis.url("rediss", &userinfo, 0);
        let store = SessionStore::redis(&url, redis.options(true))
            .await
            .expect("a store (degraded until it can connect)");
        let health = degraded(&store).await;
        let error = health.last_error.clone().unwrap_or_default();
        assert!(
            error.contains("WRONGPASS") || error.to_lowercase().contains("auth"),
            "the error does not say the password was refused: {error}"
        );
        assert_no_secret("the store error", &error);
        assert_no_secret("the store's Debug", &format!("{store:?}"));
        let flush = store
            .flush(Duration::from_millis(300))
            .await
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert_no_secret("the flush error", &flush);
    }
    // The store logged the failure (with the URL, redacted).
    let logs = logs_text();
    assert!(
        logs.contains("redis unreachable") && logs.contains(":***@127.0.0.1"),
        "{logs}"
    );
    assert_no_secret("the logs", &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_refused_without_the_ca_file() {
    captured_logs();
    let Some(redis) = TlsRedis::start() else {
        return;
    };
    // The built-in (webpki) roots only: the test CA is not among them.
    let url = redis.url("rediss", &format!(":{TOKEN}"), 0);
    let store = SessionStore::redis(&url, redis.options(false))
        .await
        .expect("a store (degraded until it can connect)");
    let health = degraded(&store).await;
    let error = health.last_error.unwrap_or_default();
    assert!(
        error.to_lowercase().contains("certificate"),
        "the error does not name the certificate: {error}"
    );
    assert_no_secret("the store error", &error);
    assert_no_secret("the logs", &logs_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_redis_to_the_tls_port_does_not_connect() {
    captured_logs();
    let Some(redis) = TlsRedis::start() else {
        return;
    };
    let url = redis.url("redis", &format!(":{TOKEN}"), 0);
    let store = SessionStore::redis(&url, fast_options())
        .await
        .expect("a store (degraded until it can connect)");
    let health = degraded(&store).await;
    let table = SessionTable::new(store.clone(), SessionConfig::default());
    step(&table, req("plain", Some(1), true)).await;
    assert!(
        store.flush(Duration::from_millis(500)).await.is_err(),
        "a plain connection to a TLS port made a write durable"
    );
    assert_no_secret("the store error", &health.last_error.unwrap_or_default());
    assert_no_secret("the logs", &logs_text());
}

#[tokio::test]
async fn unusable_ca_files_are_refused_at_creation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("rediss://:{TOKEN}@127.0.0.1:1/0");
    let store = |ca_file: PathBuf, url: String| async move {
        let opts = RedisStoreOptions {
            ca_file: Some(ca_file),
            ..fast_options()
        };
        SessionStore::redis(&url, opts)
            .await
            .expect_err("an unusable CA file")
    };

    let err = store(dir.path().join("missing.pem"), url.clone()).await;
    assert!(matches!(err, StoreError::CaFile { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, b"\x30\x82\x01\x0a binary, not PEM").expect("write");
    let err = store(not_pem, url.clone()).await;
    assert!(matches!(err, StoreError::CaFile { .. }), "{err}");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");

    // A good CA file, but the URL has no TLS (or is a Sentinel URL): refused, password hidden.
    let (ca_pem, _, _) = certificates();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write");
    for url in [
        format!("redis://:{TOKEN}@127.0.0.1:1/0"),
        "redis+sentinel://127.0.0.1:1/mymaster".to_owned(),
    ] {
        let err = store(ca_file.clone(), url).await;
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err}");
        assert!(err.to_string().contains("rediss://"), "{err}");
        assert_no_secret("the error", &err.to_string());
        assert_no_secret("the error's Debug", &format!("{err:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fudo_serve_with_a_rediss_url_and_ca_file() {
    let Some(redis) = TlsRedis::start() else {
        return;
    };
    let url = format!(
        "sessions.redis_url={}",
        redis.url("rediss", &format!(":{TOKEN}"), 0)
    );
    let ca = format!("sessions.redis_ca_file={}", redis.ca_file.display());
    let node = FudoProcess::start(&[
        "--set",
        "sessions.backend=redis",
        "--set",
        &url,
        "--set",
        &ca,
    ]);
    let mut client = GrpcInferenceServiceClient::connect(node.url())
        .await
        .expect("connect");
    let obs: Vec<f32> = (0..32).map(|i| i as f32 / 32.0).collect();
    for seq in 1..=3 {
        let response = client
            .model_infer(step_request("serve-tls", seq, &obs))
            .await
            .expect("step")
            .into_inner();
        assert!(int_param(&response, "durable_watermark").is_some());
    }
    // The node's store makes the steps durable in the TLS Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if redis
            .stored(0, "serve-tls")
            .await
            .is_some_and(|s| s.seq == 3)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fudo serve never wrote the session to the TLS redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
