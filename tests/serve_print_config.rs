//! `fudo serve --print-config`, as an operator runs it to check a ConfigMap: the merged
//! configuration on stdout with its secrets hidden, and a non-zero exit on a bad key.

use std::process::Command;

fn print_config(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fudo"))
        .args(["serve", "--print-config"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run fudo serve --print-config")
}

#[test]
fn secrets_from_the_environment_are_not_printed() {
    let out = print_config(
        &[
            (
                "FUDO_SESSIONS_REDIS_URL",
                "rediss://:auth-t0ken@master.fudo.cache.amazonaws.com:6379",
            ),
            ("FUDO_CLUSTER_LINK_TOKEN", "l1nk-secret"),
        ],
        &["--set", "sessions.backend=redis"],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("auth-t0ken"), "{stdout}");
    assert!(!stdout.contains("l1nk-secret"), "{stdout}");
    assert!(
        stdout.contains("redis_url = \"rediss://:***@master.fudo.cache.amazonaws.com:6379\""),
        "{stdout}"
    );
    assert!(stdout.contains("link_token = \"***\""), "{stdout}");
    assert!(stdout.contains("backend = \"redis\""), "{stdout}");
}

#[test]
fn an_unknown_key_fails_with_its_name() {
    let out = print_config(&[], &["--set", "models.shardz=4"]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shardz"), "{stderr}");
    assert!(out.stdout.is_empty(), "{out:?}");
}
