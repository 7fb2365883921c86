use super::*;

const GOOD: &str = r#"
name = "node-kill"
summary = "kill a node"
why = "because"

[cluster]
redis = "sentinel"

[load]
rate = 1000
duration_s = 60
sessions = 4

[short]
duration_s = 20
time_scale = 0.25

[[fault]]
kind = "node-kill"
at_s = 20
node = "tokyo-a-1"

[[fault]]
kind = "node-freeze"
at_s = 40
for_s = 10
node = "osaka-b-1"

[[hypothesis]]
kind = "max-failed"
max = 0

[[hypothesis]]
kind = "p99-ms"
phase = "during"
max = 50

[[hypothesis]]
kind = "sessions-match-reference"
"#;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse("s.toml", text, false)
}

fn reason(text: &str) -> ScenarioError {
    parse(text).expect_err("must be refused")
}

#[test]
fn a_good_file_parses_with_defaults() {
    let s = parse(GOOD).expect("parses");
    assert_eq!(s.name, "node-kill");
    assert_eq!(s.cluster.topology.nodes().len(), 4);
    assert_eq!(s.load.deadline, Duration::from_millis(250));
    assert_eq!(s.load.stateless_rate(), 1000.0 - 4.0 * 20.0);
    assert_eq!(s.faults.len(), 2);
    assert_eq!(s.faults[0].at, Duration::from_secs(20));
    assert_eq!(s.faults[0].heal_at, None);
    assert_eq!(s.faults[0].window_end, Duration::from_secs(25));
    assert_eq!(s.faults[1].heal_at, Some(Duration::from_secs(50)));
    assert_eq!(s.faults[1].line, 23);
    assert_eq!(s.hypotheses.len(), 3);
}

#[test]
fn the_short_form_scales_fault_times() {
    let s = Scenario::parse("s.toml", GOOD, true).expect("parses");
    assert!(s.short);
    assert_eq!(s.load.duration, Duration::from_secs(20));
    assert_eq!(s.faults[0].at, Duration::from_secs(5));
    assert_eq!(s.faults[1].heal_at, Some(Duration::from_secs_f64(12.5)));
}

#[test]
fn an_unknown_fault_kind_names_its_line() {
    let text = GOOD.replace("kind = \"node-kill\"", "kind = \"node-explode\"");
    let e = reason(&text);
    assert_eq!(e.line, 18, "{e}");
    assert!(e.reason.contains("node-explode"), "{e}");
}

#[test]
fn a_missing_field_is_named() {
    let e = reason(&GOOD.replace("node = \"tokyo-a-1\"\n", ""));
    assert!(e.reason.contains("missing field `node`"), "{e}");
    assert_eq!(e.line, 18, "{e}");
    let e = reason(&GOOD.replace("rate = 1000\n", ""));
    assert!(e.reason.contains("rate"), "{e}");
}

#[test]
fn a_time_after_the_end_is_refused() {
    let e = reason(&GOOD.replace("at_s = 40", "at_s = 55"));
    assert_eq!(e.line, 23, "{e}");
    assert!(e.reason.contains("after the run ends"), "{e}");
}

#[test]
fn bad_times_are_refused() {
    assert!(
        reason(&GOOD.replace("at_s = 20", "at_s = -1"))
            .reason
            .contains("≥ 0")
    );
    assert!(
        reason(&GOOD.replace("at_s = 20", "at_s = \"soon\""))
            .reason
            .contains("number")
    );
    assert!(
        reason(&GOOD.replace("for_s = 10", ""))
            .reason
            .contains("needs for_s")
    );
    let e = reason(&GOOD.replace("node = \"tokyo-a-1\"", "node = \"tokyo-a-1\"\nfor_s = 3"));
    assert!(e.reason.contains("window_s"), "{e}");
}

#[test]
fn unknown_targets_and_keys_are_refused() {
    let e = reason(&GOOD.replace("\"tokyo-a-1\"", "\"tokyo-z-9\""));
    assert!(e.reason.contains("unknown node"), "{e}");
    let e = reason(&GOOD.replace("node = \"osaka-b-1\"", "node = \"osaka-b-1\"\nsignal = 9"));
    assert!(e.reason.contains("signal"), "{e}");
    let e = reason(&GOOD.replace("sessions = 4", "sessions = 4\nsesions = 5"));
    assert!(e.reason.contains("sesions"), "{e}");
    assert_eq!(e.line, 13, "{e}");
}

#[test]
fn faults_the_network_cannot_make_are_refused() {
    let text = GOOD.replace(
        "kind = \"node-freeze\"\nat_s = 40\nfor_s = 10\nnode = \"osaka-b-1\"",
        "kind = \"partition\"\nat_s = 40\nfor_s = 10\nisolate = \"osaka\"",
    );
    assert!(reason(&text).reason.contains("netns"));
    let ok = text.replace(
        "redis = \"sentinel\"",
        "redis = \"sentinel\"\nnetwork = \"netns\"",
    );
    parse(&ok).expect("partition with netns parses");
    let text = GOOD.replace("kind = \"node-kill\"", "kind = \"connection-cut\"");
    assert!(reason(&text).reason.contains("proxy"));
}

#[test]
fn hypotheses_are_checked() {
    let e = reason(&GOOD.replace(
        "kind = \"max-failed\"\nmax = 0",
        "kind = \"success-ratio\"\nmin = 2.0",
    ));
    assert!(e.reason.contains("[0, 1]"), "{e}");
    let e = reason(&GOOD.replace("sessions = 4\n", ""));
    assert!(e.reason.contains("sessions ≥ 1"), "{e}");
    let e = reason(&GOOD.replace("kind = \"max-failed\"", "kind = \"max-faild\""));
    assert!(e.reason.contains("max-faild"), "{e}");
}

#[test]
fn short_needs_a_short_section() {
    let text = GOOD.replace("[short]\nduration_s = 20\ntime_scale = 0.25\n", "");
    let e = Scenario::parse("s.toml", &text, true).expect_err("refused");
    assert!(e.reason.contains("[short]"), "{e}");
}

#[test]
fn load_limits() {
    let e = reason(&GOOD.replace("sessions = 4", "sessions = 400"));
    assert!(e.reason.contains("exceeds load.rate"), "{e}");
    let e = reason(&GOOD.replace("duration_s = 60", "duration_s = 0"));
    assert!(e.reason.contains("duration_s"), "{e}");
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}

const DEPLOY: &str = r#"
name = "deploy"
summary = "deploy"
why = "because"

[cluster]
models = "deploy-fixtures"

[load]
rate = 1000
duration_s = 60
sessions = 4

[short]
duration_s = 20
time_scale = 0.25

[[fault]]
kind = "deploy"
at_s = 10
window_s = 10
model = "ppo_mlp"
version = "2"
strategy = "canary"
shadow_s = 4
steps_pct = [10, 50]
step_s = 3
bake_s = 6
expect = "succeeded"

[[fault]]
kind = "poison-version"
at_s = 10
model = "ppo_mlp"
version = "2"
nan_after = 100

[[hypothesis]]
kind = "deploys-as-expected"

[[hypothesis]]
kind = "p99-ratio"
max = 1.1
short_max = 1.5
"#;

#[test]
fn deploy_faults_parse_and_their_times_scale_in_the_short_form() {
    let s = parse(DEPLOY).expect("parses");
    assert_eq!(s.cluster.models, ModelsMode::DeployFixtures);
    assert_eq!(s.faults[0].kind.name(), "deploy");
    assert_eq!(s.faults[0].kind.target(), "ppo_mlp/2 (canary)");
    let short = Scenario::parse("s.toml", DEPLOY, true).expect("short form parses");
    let FaultKind::Deploy {
        shadow_s,
        step_s,
        bake_s,
        ..
    } = &short.faults[0].kind
    else {
        panic!("a deploy");
    };
    // 4 × 0.25 = 1; 3 × 0.25 = 0.75; 6 × 0.25 = 1.5; never below 0.5 s.
    assert_eq!((*shadow_s, *step_s, *bake_s), (1.0, 0.75, 1.5));
    assert!(matches!(s.hypotheses[1], Hypothesis::P99Ratio { max, .. } if max == 1.1));
    assert!(matches!(short.hypotheses[1], Hypothesis::P99Ratio { max, .. } if max == 1.5));
}

#[test]
fn bad_deploy_faults_are_refused_with_the_reason() {
    let e = reason(&DEPLOY.replace("strategy = \"canary\"", "strategy = \"purple\""));
    assert!(e.reason.contains("unknown strategy `purple`"), "{e}");
    let e = reason(&DEPLOY.replace("expect = \"succeeded\"", "expect = \"shadowed\""));
    assert!(e.reason.contains("deploy.expect must be one of"), "{e}");
    let e = reason(&DEPLOY.replace("steps_pct = [10, 50]", "steps_pct = [50, 10]"));
    assert!(e.reason.contains("must increase"), "{e}");
    let e = reason(&DEPLOY.replace("nan_after = 100", "nan_after = 0"));
    assert!(e.reason.contains("nan_after must be ≥ 1"), "{e}");
    let e = reason(&DEPLOY.replace("models = \"deploy-fixtures\"", ""));
    assert!(
        e.reason
            .contains("needs cluster.models = \"deploy-fixtures\""),
        "{e}"
    );
    let e = reason(&DEPLOY.replace("max = 1.1", "max = 0.5"));
    assert!(
        e.reason.contains("p99-ratio.max and short_max must be ≥ 1"),
        "{e}"
    );
}
