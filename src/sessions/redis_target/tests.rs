use super::*;

fn sentinel(url: &str) -> (Vec<(String, u16)>, String, i64) {
    match RedisTarget::parse(url).expect("valid") {
        RedisTarget::Sentinel {
            sentinels,
            master,
            db,
        } => (sentinels, master, db),
        other => panic!("not a sentinel target: {other:?}"),
    }
}

fn reason(url: &str) -> String {
    match RedisTarget::parse(url) {
        Err(StoreError::InvalidUrl { url: u, reason }) => {
            assert_eq!(u, redact_url(url));
            reason
        }
        other => panic!("expected InvalidUrl for {url:?}, got {other:?}"),
    }
}

fn hp(h: &str, p: u16) -> (String, u16) {
    (h.to_owned(), p)
}

#[test]
fn plain_urls_stay_direct() {
    for url in [
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1:6379/2",
        "rediss://user:pw@host:6380/0",
        "unix:///tmp/redis.sock",
        "not a url",
    ] {
        assert_eq!(
            RedisTarget::parse(url).expect("direct"),
            RedisTarget::Direct(url.to_owned())
        );
    }
}

#[test]
fn sentinel_hosts_master_and_db() {
    assert_eq!(
        sentinel("redis+sentinel://10.0.0.1:26380,sentinel-b:26381/mymaster"),
        (
            vec![hp("10.0.0.1", 26380), hp("sentinel-b", 26381)],
            "mymaster".to_owned(),
            0
        )
    );
    assert_eq!(
        sentinel("redis+sentinel://s1:1/m/3"),
        (vec![hp("s1", 1)], "m".to_owned(), 3)
    );
    assert_eq!(sentinel("redis+sentinel://s1/m/").2, 0);
    assert_eq!(sentinel("redis+sentinel://s1/m/7/").2, 7);
    assert_eq!(sentinel("REDIS+SENTINEL://s1/m").1, "m");
}

#[test]
fn default_port_and_ipv6() {
    assert_eq!(
        sentinel("redis+sentinel://a,[::1]:5000,[fe80::2]/m").0,
        vec![
            hp("a", DEFAULT_SENTINEL_PORT),
            hp("::1", 5000),
            hp("fe80::2", DEFAULT_SENTINEL_PORT)
        ]
    );
}

#[test]
fn display_round_trips() {
    let url = "redis+sentinel://a:1,[::1]:2/mymaster/4";
    let target = RedisTarget::parse(url).expect("valid");
    assert_eq!(target.to_string(), url);
    assert_eq!(
        target.to_string().parse::<RedisTarget>().expect("valid"),
        target
    );
}

#[test]
fn malformed_sentinel_urls_say_why() {
    let cases = [
        ("redis+sentinel://s1:26379", "missing master name"),
        ("redis+sentinel://s1:26379/", "missing master name"),
        ("redis+sentinel:///m", "no sentinel address"),
        ("redis+sentinel://s1,,s2/m", "empty sentinel address"),
        ("redis+sentinel://s1:/m", "not in 1..=65535"),
        ("redis+sentinel://s1:0/m", "not in 1..=65535"),
        ("redis+sentinel://s1:70000/m", "not in 1..=65535"),
        ("redis+sentinel://s1:x/m", "not in 1..=65535"),
        ("redis+sentinel://:26379/m", "has no host"),
        ("redis+sentinel://::1:26379/m", "in brackets"),
        ("redis+sentinel://[::1/m", "closing ']'"),
        ("redis+sentinel://[::1]x/m", "after ']'"),
        ("redis+sentinel://s1/m/-1", "not a non-negative integer"),
        ("redis+sentinel://s1/m/db", "not a non-negative integer"),
        ("redis+sentinel://s1/m/0/x", "unexpected path segment"),
        ("redis+sentinel://s1/my master", "whitespace"),
        ("redis+sentinel://:pw@s1/m", "credentials"),
        ("redis+sentinel://s1/m?timeout=1", "query"),
        ("rediss+sentinel://s1/m", "unsupported scheme"),
    ];
    for (url, want) in cases {
        let why = reason(url);
        assert!(why.contains(want), "{url}: {why:?} lacks {want:?}");
    }
}

#[test]
fn error_message_names_the_url_and_the_form() {
    let err = RedisTarget::parse("redis+sentinel://s1").expect_err("invalid");
    let msg = err.to_string();
    assert!(msg.contains("redis+sentinel://s1"), "{msg}");
    assert!(msg.contains("<master-name>"), "{msg}");
}

#[test]
fn passwords_are_redacted() {
    let cases = [
        (
            "rediss://:s3cr3t-token@master.fudo.abc123.apne1.cache.amazonaws.com:6379",
            "rediss://:***@master.fudo.abc123.apne1.cache.amazonaws.com:6379",
        ),
        (
            "rediss://fudo:p%40ss@host:6380/2",
            "rediss://fudo:***@host:6380/2",
        ),
        ("redis://user:pa/ss@host/0", "redis://user:***@host/0"),
        (
            "redis://:p@ss@host:1/0#insecure",
            "redis://:***@host:1/0#insecure",
        ),
        (
            "rediss://:tok@[::1]:6379/0?protocol=resp3",
            "rediss://:***@[::1]:6379/0?protocol=resp3",
        ),
        (
            "unix:///run/redis.sock?db=1&pass=hunter2&user=u",
            "unix:///run/redis.sock?db=1&pass=***&user=u",
        ),
        ("unix:///tmp/a@b.sock", "unix:///tmp/a@b.sock"),
        ("redis://user@host:6379", "redis://user@host:6379"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("not a url", "not a url"),
        ("pw@host:6379", "***@host:6379"),
    ];
    for (url, want) in cases {
        assert_eq!(redact_url(url), want, "{url}");
    }
}

#[test]
fn display_debug_and_errors_hide_the_password() {
    let target = RedisTarget::parse("rediss://u:hunter2@host:6379/1").expect("direct");
    assert_eq!(target.to_string(), "rediss://u:***@host:6379/1");
    let debug = format!("{target:?}");
    assert!(
        !debug.contains("hunter2") && debug.contains("u:***@host"),
        "{debug}"
    );
    let err = RedisTarget::parse("redis+sentinel://:hunter2@s1/m").expect_err("credentials");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}
