//! Model deploys on a real `fudo serve` process with a model repository, under concurrent
//! stateless load and recurrent sessions, with no client retries: every failed request counts.
//!
//! - blue-green from version 1 to 2: 0 failed requests, version 2 serves and is released, a
//!   session started on version 1 stays on it after the switch;
//! - a version that answers NaN after warm-up: rolled back automatically, reason recorded,
//!   0 failed requests, version 2 still serves and stays released;
//! - a corrupted version: refused before it loads, the error names the file;
//! - bad requests: unknown version, unknown strategy, nothing to roll back;
//! - a deploy that migrates sessions re-warms each one on the new version from its last 16
//!   observations: its next answer equals a fresh session's on those observations.

#[path = "support/fudo_process.rs"]
mod fudo_process;
#[path = "support/oip_requests.rs"]
mod oip_requests;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fudo::api::proto::{
    fudo::v1::{
        DeployRecord, DeployRequest, DeploysRequest, PoisonVersionRequest, RollbackRequest,
        admin_client::AdminClient,
    },
    inference::grpc_inference_service_client::GrpcInferenceServiceClient,
};
use fudo_process::FudoProcess;
use oip_requests::{f32s, obs_request, step_request};
use tonic::{Code, transport::Channel};

/// Copies version 1 of a bundled model as `version`, with a manifest that names it.
fn add_version(root: &Path, name: &str, version: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
        .join("1");
    let dst = root.join(name).join(version);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "model.safetensors", "golden.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).unwrap()).unwrap();
    manifest["version"] = version.into();
    std::fs::write(dst.join("manifest.json"), manifest.to_string()).unwrap();
}

fn obs(i: u64) -> Vec<f32> {
    (0..32)
        .map(|j| ((i * 7 + j) % 19) as f32 / 10.0 - 0.9)
        .collect()
}

async fn records(admin: &mut AdminClient<Channel>) -> Vec<DeployRecord> {
    admin
        .deploys(DeploysRequest {})
        .await
        .unwrap()
        .into_inner()
        .deploys
}

async fn wait_outcome(
    admin: &mut AdminClient<Channel>,
    id: &str,
    timeout: Duration,
) -> DeployRecord {
    let until = Instant::now() + timeout;
    loop {
        let rec = records(admin)
            .await
            .into_iter()
            .find(|r| r.id == id)
            .expect("record");
        if rec.outcome != "running" {
            return rec;
        }
        assert!(Instant::now() < until, "deploy {id} still running: {rec:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn live(admin: &mut AdminClient<Channel>, model: &str) -> (String, Vec<String>) {
    let serving = admin
        .deploys(DeploysRequest {})
        .await
        .unwrap()
        .into_inner()
        .serving;
    let s = serving.into_iter().find(|s| s.model == model).unwrap();
    (s.live, s.loaded)
}

fn deploy(version: &str, strategy: &str) -> DeployRequest {
    DeployRequest {
        model: "ppo_mlp".into(),
        version: version.into(),
        strategy: strategy.into(),
        shadow_s: 1.0,
        bake_s: 2.0,
        step_s: 1.0,
        steps_pct: vec![10.0, 50.0],
        retire_s: 1.0,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_switch_roll_back_and_refuse_without_a_failed_request() {
    let repo = tempfile::tempdir().unwrap();
    for (name, v) in [
        ("ppo_mlp", "1"),
        ("ppo_mlp", "2"),
        ("ppo_mlp", "3"),
        ("ppo_mlp", "4"),
        ("lstm_policy", "1"),
    ] {
        add_version(repo.path(), name, v);
    }
    std::fs::write(repo.path().join("ppo_mlp/RELEASED"), "1\n").unwrap();
    // Version 4 is corrupted after its manifest was written.
    let weights = repo.path().join("ppo_mlp/4/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&weights, bytes).unwrap();

    let node = FudoProcess::start(&[
        "--models",
        repo.path().to_str().unwrap(),
        "--set",
        "chaos.enabled=true",
    ]);
    let channel = Channel::from_shared(node.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = AdminClient::new(channel.clone());
    assert_eq!(
        live(&mut admin, "ppo_mlp").await.0,
        "1",
        "the released version serves, not the newest"
    );

    // Load: 4 stateless clients, no retries.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for c in 0..4u64 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let mut client = GrpcInferenceServiceClient::new(channel.clone());
        clients.push(tokio::spawn(async move {
            let mut i = c * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                match client.model_infer(obs_request("ppo_mlp", 1, &obs(i))).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        eprintln!("request failed: {status:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Blue-green 1 → 2, through a shadow phase: succeeds, and 2 is released.
    let id = admin
        .deploy(deploy("2", "blue-green"))
        .await
        .unwrap()
        .into_inner()
        .id;
    let rec = wait_outcome(&mut admin, &id, Duration::from_secs(30)).await;
    assert_eq!(rec.outcome, "succeeded", "{rec:?}");
    let green = rec.green.unwrap();
    assert!(
        green.compared > 0,
        "the shadow phase compared answers: {green:?}"
    );
    assert_eq!(
        green.agreement, 1.0,
        "the same weights agree on every action"
    );
    assert_eq!(live(&mut admin, "ppo_mlp").await.0, "2");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("ppo_mlp/RELEASED"))
            .unwrap()
            .trim(),
        "2"
    );

    // Version 3 goes bad after warm-up: the gates roll it back by themselves.
    let (bad_id, mut admin2) = (
        admin
            .deploy(deploy("3", "canary"))
            .await
            .unwrap()
            .into_inner()
            .id,
        admin.clone(),
    );
    let until = Instant::now() + Duration::from_secs(10);
    while !live(&mut admin2, "ppo_mlp")
        .await
        .1
        .contains(&"3".to_owned())
    {
        assert!(Instant::now() < until, "version 3 never loaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin
        .poison_version(PoisonVersionRequest {
            model: "ppo_mlp".into(),
            version: "3".into(),
            nan_after: 400,
        })
        .await
        .unwrap();
    let rec = wait_outcome(&mut admin, &bad_id, Duration::from_secs(30)).await;
    assert_eq!(rec.outcome, "rolled-back", "{rec:?}");
    assert!(
        rec.reason.contains("NaN"),
        "the reason names NaN: {}",
        rec.reason
    );
    assert_eq!(live(&mut admin, "ppo_mlp").await.0, "2");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("ppo_mlp/RELEASED"))
            .unwrap()
            .trim(),
        "2"
    );

    // A corrupted version is refused before it serves, naming the file.
    let err = admin.deploy(deploy("4", "blue-green")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("model.safetensors"),
        "{}",
        err.message()
    );
    let refused = records(&mut admin).await.into_iter().last().unwrap();
    assert_eq!(refused.outcome, "refused");

    // Bad requests get clear errors.
    let err = admin.deploy(deploy("9", "blue-green")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = admin.deploy(deploy("2", "purple")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("purple"));
    // Version 2 is live (and its predecessor may still be retiring): nothing to do or busy.
    let err = admin
        .rollback(RollbackRequest {
            model: "nope".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("requests during the deploys: {ok} answered, {failed} failed");
    assert!(ok > 1000, "the load ran: {ok}");
    assert_eq!(
        failed, 0,
        "no request failed during deploys and the rollback"
    );
}

/// A node whose repository has lstm_policy 1 (released) and 2, and ppo_mlp 1.
async fn lstm_node_with_two_versions() -> (tempfile::TempDir, FudoProcess, Channel) {
    let repo = tempfile::tempdir().unwrap();
    for (name, v) in [("ppo_mlp", "1"), ("lstm_policy", "1"), ("lstm_policy", "2")] {
        add_version(repo.path(), name, v);
    }
    std::fs::write(repo.path().join("lstm_policy/RELEASED"), "1\n").unwrap();
    let node = FudoProcess::start(&["--models", repo.path().to_str().unwrap()]);
    let channel = Channel::from_shared(node.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    (repo, node, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stays_on_the_version_it_started_on() {
    let (_repo, _node, channel) = lstm_node_with_two_versions().await;
    let mut admin = AdminClient::new(channel.clone());
    let mut infer = GrpcInferenceServiceClient::new(channel);
    let step = |seq: i64| step_request("pinned", seq, &[0.1; 32]);
    let first = infer.model_infer(step(1)).await.unwrap().into_inner();
    assert_eq!(first.model_version, "1");
    let id = admin
        .deploy(DeployRequest {
            model: "lstm_policy".into(),
            version: "2".into(),
            strategy: "blue-green".into(),
            shadow_s: -1.0,
            bake_s: 1.0,
            retire_s: 30.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let until = Instant::now() + Duration::from_secs(20);
    while live(&mut admin, "lstm_policy").await.0 != "2" {
        assert!(Instant::now() < until, "version 2 never went live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old session stays on 1; a new one starts on 2.
    let second = infer.model_infer(step(2)).await.unwrap().into_inner();
    assert_eq!(second.model_version, "1");
    let other = infer
        .model_infer(step_request("new", 1, &[0.1; 32]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.model_version, "2");
    let rec = wait_outcome(&mut admin, &id, Duration::from_secs(20)).await;
    assert_eq!(rec.outcome, "succeeded");
}

fn logits(r: &fudo::api::proto::inference::ModelInferResponse) -> Vec<f32> {
    let i = r
        .outputs
        .iter()
        .position(|o| o.name == "logits")
        .expect("a logits output");
    f32s(&r.raw_output_contents[i])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrating_deploy_re_warms_sessions_by_replaying_their_recent_observations() {
    let (_repo, _node, channel) = lstm_node_with_two_versions().await;
    let mut admin = AdminClient::new(channel.clone());
    let mut infer = GrpcInferenceServiceClient::new(channel);
    let obs_at = |seq: u64| -> Vec<f32> { obs(seq * 13) };
    for seq in 1..=20u64 {
        let r = infer
            .model_infer(step_request("moving", seq as i64, &obs_at(seq)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.model_version, "1");
    }
    admin
        .deploy(DeployRequest {
            model: "lstm_policy".into(),
            version: "2".into(),
            strategy: "blue-green".into(),
            shadow_s: -1.0,
            bake_s: 5.0,
            retire_s: 30.0,
            migrate_sessions: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while live(&mut admin, "lstm_policy").await.0 != "2" {
        assert!(Instant::now() < until, "version 2 never went live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The session moves now, although version 1 is still loaded.
    let moved = infer
        .model_infer(step_request("moving", 21, &obs_at(21)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.model_version, "2");
    // A fresh session on version 2 that sees observations 5..=20 and then 21 (the same weights
    // as version 1) must answer exactly what the re-warmed session answered.
    for (i, seq) in (5..=21u64).enumerate() {
        let r = infer
            .model_infer(step_request("fresh", i as i64 + 1, &obs_at(seq)))
            .await
            .unwrap()
            .into_inner();
        if seq == 21 {
            assert_eq!(r.model_version, "2");
            assert_eq!(logits(&r), logits(&moved));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rolls_back_within_the_retire_window_and_not_after() {
    let (repo, _node, channel) = lstm_node_with_two_versions().await;
    let mut admin = AdminClient::new(channel);
    let request = |retire_s: f64| DeployRequest {
        model: "lstm_policy".into(),
        version: "2".into(),
        strategy: "blue-green".into(),
        shadow_s: -1.0,
        bake_s: 1.0,
        retire_s,
        ..Default::default()
    };
    let released = || {
        std::fs::read_to_string(repo.path().join("lstm_policy/RELEASED"))
            .unwrap()
            .trim()
            .to_owned()
    };
    // Inside the retire window: one switch back, and the release is undone.
    let id = admin.deploy(request(60.0)).await.unwrap().into_inner().id;
    let rec = wait_outcome(&mut admin, &id, Duration::from_secs(20)).await;
    assert_eq!(rec.outcome, "succeeded");
    assert_eq!(released(), "2");
    let back = admin
        .rollback(RollbackRequest {
            model: "lstm_policy".into(),
            reason: "operator test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.rolled_back_to, "1");
    let until = Instant::now() + Duration::from_secs(10);
    while live(&mut admin, "lstm_policy").await != ("1".to_owned(), vec!["1".to_owned()]) {
        assert!(Instant::now() < until, "version 1 is not back alone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rec = records(&mut admin)
        .await
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert_eq!(rec.outcome, "rolled-back");
    assert_eq!(rec.reason, "operator rollback: operator test");
    assert_eq!(released(), "1");
    // Past the retire window the old version is gone: the rollback is refused, clearly.
    let id = admin.deploy(request(1.0)).await.unwrap().into_inner().id;
    wait_outcome(&mut admin, &id, Duration::from_secs(20)).await;
    let until = Instant::now() + Duration::from_secs(20);
    while records(&mut admin)
        .await
        .iter()
        .any(|r| r.id == id && r.phase != "done")
    {
        assert!(Instant::now() < until, "the deploy never finished retiring");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = admin
        .rollback(RollbackRequest {
            model: "lstm_policy".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("deploy the older version"),
        "{}",
        err.message()
    );
    assert_eq!(live(&mut admin, "lstm_policy").await.0, "2");
}
