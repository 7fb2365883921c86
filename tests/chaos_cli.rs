//! `fudo chaos` from the command line: the bundled scenarios are valid in both forms, and a
//! broken scenario is refused with its line and reason before anything starts.

use std::process::Command;

fn fudo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fudo"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("fudo runs")
}

#[test]
fn every_bundled_scenario_checks_in_both_forms() {
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/chaos"))
        .expect("chaos/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let names: Vec<&str> = files
        .iter()
        .filter_map(|f| f.rsplit('/').next()?.strip_suffix(".toml"))
        .collect();
    for required in [
        "az-partition",
        "bad-model-rollback",
        "deploy-during-node-loss",
        "deploy-under-load",
        "node-freeze",
        "node-kill",
        "redis-failover",
        "shard-panic",
        "slow-shard",
    ] {
        assert!(
            names.contains(&required),
            "chaos/{required}.toml is missing"
        );
    }
    let mut args = vec!["chaos", "check", "--short"];
    args.extend(files.iter().map(String::as_str));
    let out = fudo(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        files.len()
    );
}

#[test]
fn a_broken_scenario_is_refused_with_its_line_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.toml");
    let out_dir = dir.path().join("out");
    let cases = [
        (
            "kind = \"node-kill\"",
            "kind = \"node-explode\"",
            "unknown variant `node-explode`",
        ),
        ("at_s = 5", "at_s = 50", "after the run ends"),
        ("node = \"tokyo-a-1\"\n", "", "missing field `node`"),
    ];
    let good = "name = \"b\"\nsummary = \"s\"\nwhy = \"w\"\n[load]\nrate = 100\nduration_s = 10\n\n[[fault]]\nkind = \"node-kill\"\nat_s = 5\nnode = \"tokyo-a-1\"\n\n[[hypothesis]]\nkind = \"max-failed\"\nmax = 0\n";
    for (from, to, reason) in cases {
        std::fs::write(&file, good.replace(from, to)).expect("write");
        let out = fudo(&[
            "chaos",
            "run",
            &file.display().to_string(),
            "--out",
            &out_dir.display().to_string(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{to:?} was accepted");
        assert!(stderr.contains("broken.toml:8:1"), "no line in: {stderr}");
        assert!(stderr.contains(reason), "no reason {reason:?} in: {stderr}");
        assert!(!out_dir.exists(), "something was started for a broken file");
    }
}
