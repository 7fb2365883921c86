use super::*;

#[test]
fn defaults_are_valid_and_loopback() {
    let c = Config::load_from(None, &[], &[]).expect("defaults");
    assert_eq!(c, Config::default());
    assert!(c.server.grpc_addr.ip().is_loopback());
    assert_eq!(c.server.grpc_addr.port(), 8001);
    assert_eq!(c.server.metrics_addr.port(), 8002);
}

#[test]
fn file_then_env_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fudo.toml");
    std::fs::write(
        &path,
        "[models]\nshards = 3\nmax_batch = 8\n[chaos]\nenabled = true\n",
    )
    .expect("write");
    let env = vec![
        ("FUDO_MODELS_SHARDS".to_owned(), "5".to_owned()),
        ("FUDO_SERVER_NODE_NAME".to_owned(), "tokyo-1".to_owned()),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let c =
        Config::load_from(Some(&path), &env, &["models.max_batch=16".to_owned()]).expect("load");
    assert_eq!(c.models.shards, 5);
    assert_eq!(c.models.max_batch, 16);
    assert!(c.chaos.enabled);
    assert_eq!(c.server.node_name, "tokyo-1");
}

#[test]
fn printed_config_loads_back_unchanged() {
    let mut c = Config::default();
    c.models.shards = 7;
    c.models.repository = Some("/srv/models".into());
    c.sessions.backend = SessionBackend::Redis;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fudo.toml");
    std::fs::write(&path, toml::to_string(&c).expect("serialize")).expect("write");
    assert_eq!(Config::load_from(Some(&path), &[], &[]).expect("load"), c);
}

#[test]
fn the_shown_config_hides_secrets_and_nothing_else() {
    let mut c = Config::default();
    assert_eq!(c.redacted(), c, "no secrets, nothing to hide");
    c.sessions.redis_url = "rediss://fudo:s3cret@redis.internal:6379/0".to_owned();
    c.cluster.link_token = "t0ken".to_owned();
    let shown = toml::to_string(&c.redacted()).expect("serialize");
    assert!(
        !shown.contains("s3cret") && !shown.contains("t0ken"),
        "{shown}"
    );
    assert!(
        shown.contains("rediss://fudo:***@redis.internal:6379/0"),
        "{shown}"
    );
    assert!(shown.contains("link_token = \"***\""), "{shown}");
    let mut back = c.redacted();
    back.sessions.redis_url.clone_from(&c.sessions.redis_url);
    back.cluster.link_token.clone_from(&c.cluster.link_token);
    assert_eq!(back, c, "only the two secrets differ");
}

#[test]
fn redis_ca_file_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = |path: &std::path::Path, url: &str| {
        Config::load_from(
            None,
            &[],
            &[
                "sessions.backend=redis".to_owned(),
                format!("sessions.redis_url={url}"),
                format!("sessions.redis_ca_file={}", path.display()),
            ],
        )
    };
    let tls = "rediss://:s3cret@redis.internal:6379";

    let missing = dir.path().join("missing.pem");
    let err = set(&missing, tls).unwrap_err().to_string();
    assert!(err.contains("sessions.redis_ca_file"), "{err}");
    assert!(
        err.contains("missing.pem") && err.contains("does not exist"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let err = set(&garbage, tls).unwrap_err().to_string();
    assert!(err.contains("no PEM certificate"), "{err}");

    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let err = set(&broken, tls).unwrap_err().to_string();
    assert!(err.contains("broken.pem"), "{err}");

    let ca =
        rcgen::generate_simple_self_signed(vec!["redis.internal".to_owned()]).expect("certificate");
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, ca.cert.pem()).expect("write");
    let c = set(&good, tls).expect("a PEM certificate for a rediss:// URL");
    assert_eq!(c.sessions.redis_ca_file(), Some(good.as_path()));
    let err = set(&good, "redis://:s3cret@redis.internal:6379")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a rediss:// URL"), "{err}");
    assert!(!err.contains("s3cret") && err.contains(":***@"), "{err}");
    let err = set(&good, "redis+sentinel://s1,s2/mymaster")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a rediss:// URL"), "{err}");
    // Irrelevant (memory backend), but still checked.
    let memory = Config::load_from(
        None,
        &[],
        &[format!("sessions.redis_ca_file={}", missing.display())],
    );
    assert!(memory.is_err());

    // An empty path is unset.
    let c = set(std::path::Path::new(""), tls).expect("empty is unset");
    assert_eq!(c.sessions.redis_ca_file(), None);
}

#[test]
fn bad_values_are_named() {
    let err = Config::load_from(None, &[], &["models.shards=0".to_owned()]).unwrap_err();
    assert!(err.to_string().contains("models.shards"), "{err}");
    let err = Config::load_from(None, &[], &["models.nope=1".to_owned()]).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = Config::load_from(None, &[], &["shards=1".to_owned()]).unwrap_err();
    assert!(matches!(err, ConfigError::Override(_)));
    let err = Config::load_from(None, &[], &["server.grpc_addr=nowhere".to_owned()]).unwrap_err();
    assert!(err.to_string().contains("grpc_addr") || err.to_string().contains("address"));
}

#[test]
fn a_node_does_not_link_to_itself() {
    let cluster = ClusterConfig {
        peers: vec![
            "http://fudo-0.fudo-peers:8001".to_owned(),
            "http://fudo-1.fudo-peers:8001/".to_owned(),
            "http://fudo-2.fudo-peers:8001".to_owned(),
        ],
        ..ClusterConfig::default()
    };
    assert_eq!(
        cluster.peers_except("http://fudo-1.fudo-peers:8001"),
        [
            "http://fudo-0.fudo-peers:8001",
            "http://fudo-2.fudo-peers:8001"
        ]
    );
    assert_eq!(cluster.peers_except("http://elsewhere:8001").len(), 3);
}
