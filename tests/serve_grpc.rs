//! End-to-end tests of `fudo serve` through real gRPC clients: metadata, stateless and
//! recurrent inference, every bad-input status, health, reflection, admin and metrics.

#[path = "support/fudo_process.rs"]
mod fudo_process;
#[path = "support/oip_requests.rs"]
mod oip_requests;

use fudo::api::proto::{
    fudo::v1::{
        DrainRequest, PanicActorRequest, SlowShardRequest, TreeRequest, admin_client::AdminClient,
    },
    inference::{
        InferTensorContents, ModelInferRequest, ModelMetadataRequest, ModelReadyRequest,
        ServerLiveRequest, ServerMetadataRequest, ServerReadyRequest,
        grpc_inference_service_client::GrpcInferenceServiceClient,
        model_infer_request::InferRequestedOutputTensor,
    },
};
use fudo_process::FudoProcess;
use oip_requests::{f32s, int_param, obs_request, step_request};
use tonic::{Code, transport::Channel};

type Client = GrpcInferenceServiceClient<Channel>;

async fn client(p: &FudoProcess) -> Client {
    GrpcInferenceServiceClient::connect(p.url())
        .await
        .expect("connect")
}

async fn expect_code(c: &mut Client, req: ModelInferRequest, code: Code, needle: &str) {
    let err = c.model_infer(req).await.expect_err("must fail");
    assert_eq!(err.code(), code, "{err:?}");
    assert!(
        err.message().contains(needle),
        "message `{}` should mention `{needle}`",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_health_and_reflection() {
    let p = FudoProcess::start(&[]);
    let mut c = client(&p).await;
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .expect("live")
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .expect("ready")
            .into_inner()
            .ready
    );
    let meta = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .expect("server metadata")
        .into_inner();
    assert_eq!(meta.name, "fudo");
    for model in ["ppo_mlp", "lstm_policy"] {
        let m = c
            .model_metadata(ModelMetadataRequest {
                name: model.into(),
                version: String::new(),
            })
            .await
            .expect("model metadata")
            .into_inner();
        assert_eq!(m.inputs[0].name, "obs");
        assert_eq!(m.inputs[0].shape, vec![-1, 32]);
        let outs: Vec<_> = m.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(outs, ["action", "logits", "value"]);
        let ready = c
            .model_ready(ModelReadyRequest {
                name: model.into(),
                version: String::new(),
            })
            .await
            .expect("model ready");
        assert!(ready.into_inner().ready);
    }
    let err = c
        .model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .expect_err("unknown model");
    assert_eq!(err.code(), Code::NotFound);

    let channel = Channel::from_shared(p.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "inference.GRPCInferenceService".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = stream.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "inference.GRPCInferenceService",
        "fudo.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{names:?} lacks {want}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_the_right_status() {
    let p = FudoProcess::start(&["--set", "server.max_message_bytes=65536"]);
    let mut c = client(&p).await;
    let ok = vec![0.1f32; 32];
    // Sanity: the good request works, typed contents too.
    c.model_infer(obs_request("ppo_mlp", 1, &ok))
        .await
        .expect("good request");
    let mut typed = obs_request("ppo_mlp", 1, &ok);
    typed.raw_input_contents.clear();
    typed.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: ok.clone(),
        ..Default::default()
    });
    c.model_infer(typed).await.expect("typed contents");

    expect_code(&mut c, obs_request("nope", 1, &ok), Code::NotFound, "nope").await;
    let mut v = obs_request("ppo_mlp", 1, &ok);
    v.model_version = "99".into();
    expect_code(&mut c, v, Code::NotFound, "99").await;
    expect_code(
        &mut c,
        obs_request("ppo_mlp", 1, &[0.0; 31]),
        Code::InvalidArgument,
        "shape",
    )
    .await;
    let mut r = obs_request("ppo_mlp", 1, &ok);
    r.inputs[0].datatype = "FP16".into();
    expect_code(&mut c, r, Code::InvalidArgument, "FP16").await;
    let mut r = obs_request("ppo_mlp", 1, &ok);
    r.inputs[0].name = "observations".into();
    expect_code(&mut c, r, Code::InvalidArgument, "observations").await;
    let mut nan = ok.clone();
    nan[5] = f32::NAN;
    expect_code(
        &mut c,
        obs_request("ppo_mlp", 1, &nan),
        Code::InvalidArgument,
        "column 5",
    )
    .await;
    let mut inf = ok.clone();
    inf[0] = f32::INFINITY;
    expect_code(
        &mut c,
        obs_request("ppo_mlp", 1, &inf),
        Code::InvalidArgument,
        "non-finite",
    )
    .await;
    let mut r = obs_request("ppo_mlp", 1, &ok);
    r.raw_input_contents[0].truncate(100);
    expect_code(&mut c, r, Code::InvalidArgument, "obs").await;
    let mut r = obs_request("ppo_mlp", 1, &ok);
    r.outputs.push(InferRequestedOutputTensor {
        name: "q_values".into(),
        ..Default::default()
    });
    expect_code(&mut c, r, Code::InvalidArgument, "q_values").await;
    // 70 000 bytes of observations: over the 64 KiB limit.
    let big = vec![0.0f32; 32 * 547];
    expect_code(
        &mut c,
        obs_request("ppo_mlp", 547, &big),
        Code::InvalidArgument,
        "limit",
    )
    .await;
    // Recurrent model without a session, stateless model with one.
    expect_code(
        &mut c,
        obs_request("lstm_policy", 1, &ok),
        Code::InvalidArgument,
        "sequence_id",
    )
    .await;
    let mut r = step_request("s", 1, &ok);
    r.model_name = "ppo_mlp".into();
    expect_code(&mut c, r, Code::InvalidArgument, "stateless").await;
    // Still serving after all of that.
    c.model_infer(obs_request("ppo_mlp", 1, &ok))
        .await
        .expect("still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurrent_sessions_are_idempotent_and_ordered() {
    let p = FudoProcess::start(&[]);
    let mut c = client(&p).await;
    let obs = |t: usize| -> Vec<f32> {
        (0..32)
            .map(|i| ((i * 7 + t * 3) % 11) as f32 / 11.0 - 0.5)
            .collect()
    };
    let mut answers = Vec::new();
    for t in 1..=5i64 {
        let r = c
            .model_infer(step_request("acct-1", t, &obs(t as usize)))
            .await
            .expect("step")
            .into_inner();
        assert_eq!(int_param(&r, "sequence_seq"), Some(t));
        assert_eq!(int_param(&r, "durable_watermark"), Some(t));
        answers.push(f32s(&r.raw_output_contents[1]));
    }
    // A retried step returns the stored answer without stepping the state.
    let retry = c
        .model_infer(step_request("acct-1", 3, &obs(3)))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(f32s(&retry.raw_output_contents[1]), answers[2]);
    // A gap and an unknown session are refused with FAILED_PRECONDITION.
    expect_code(
        &mut c,
        step_request("acct-1", 9, &obs(9)),
        Code::FailedPrecondition,
        "6",
    )
    .await;
    expect_code(
        &mut c,
        step_request("acct-unknown", 2, &obs(2)),
        Code::FailedPrecondition,
        "sequence_start",
    )
    .await;
    // The next step continues from the state after step 5: same as a second session fed the
    // same observations.
    let next = c
        .model_infer(step_request("acct-1", 6, &obs(6)))
        .await
        .expect("step 6")
        .into_inner();
    let mut replay = Vec::new();
    for t in 1..=6i64 {
        let r = c
            .model_infer(step_request("acct-2", t, &obs(t as usize)))
            .await
            .expect("step")
            .into_inner();
        replay.push(f32s(&r.raw_output_contents[1]));
    }
    assert_eq!(replay[5], f32s(&next.raw_output_contents[1]));
    assert_eq!(replay[..5], answers[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tree_fault_injection_and_drain() {
    let p = FudoProcess::start(&["--set", "chaos.enabled=true"]);
    let mut admin = AdminClient::connect(p.url()).await.expect("connect admin");
    let tree = admin.tree(TreeRequest {}).await.expect("tree").into_inner();
    let root = tree.root.expect("root");
    assert_eq!(root.name, "node");
    let text = format!("{root:?}");
    for name in [
        "ppo_mlp@1/router",
        "ppo_mlp@1/shard-0",
        "ppo_mlp@1/shard-1",
        "lstm_policy@1/shard-0",
        "deployer",
    ] {
        assert!(text.contains(name), "tree lacks {name}: {text}");
    }
    admin
        .panic_actor(PanicActorRequest {
            name: "ppo_mlp/shard-0".into(),
            in_forward: false,
        })
        .await
        .expect("panic");
    let mut c = client(&p).await;
    for _ in 0..20 {
        c.model_infer(obs_request("ppo_mlp", 1, &[0.2; 32]))
            .await
            .expect("serving through restart");
    }
    // The replacement is generation 2, and the restart is counted.
    let mut restarted = false;
    for _ in 0..100 {
        let tree = admin.tree(TreeRequest {}).await.expect("tree").into_inner();
        if tree.restart_count >= 1 && format!("{:?}", tree.root).contains("generation: 2") {
            restarted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(restarted, "shard-0 was not restarted");
    let err = admin
        .panic_actor(PanicActorRequest {
            name: "nope".into(),
            in_forward: false,
        })
        .await
        .expect_err("unknown actor");
    assert_eq!(err.code(), Code::NotFound);
    let metrics = p.scrape();
    for family in [
        "fudo_requests_total",
        "fudo_request_duration_seconds",
        "fudo_batch_rows",
        "fudo_actor_restarts_total",
        "fudo_queue_depth_rows",
        "fudo_sessions",
    ] {
        assert!(metrics.contains(family), "metrics lack {family}");
    }
    // A deadline that cannot be met: both shards are slowed to 300 ms per batch and the
    // request allows 100 ms. fudo answers DEADLINE_EXCEEDED itself (at admission once the
    // batch times it learned make the deadline impossible, otherwise just before the deadline
    // passes), ahead of tonic's own timer, which would answer CANCELLED.
    for shard in ["ppo_mlp/shard-0", "ppo_mlp/shard-1"] {
        admin
            .slow_shard(SlowShardRequest {
                name: shard.into(),
                delay_ms: 300,
            })
            .await
            .expect("slow shard");
    }
    c.model_infer(obs_request("ppo_mlp", 1, &[0.2; 32]))
        .await
        .expect("a slow batch within the default 1 s deadline");
    let mut req = tonic::Request::new(obs_request("ppo_mlp", 1, &[0.2; 32]));
    req.metadata_mut()
        .insert("grpc-timeout", "100m".parse().expect("header"));
    let err = c.model_infer(req).await.expect_err("deadline");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("deadline"), "{err:?}");
    for shard in ["ppo_mlp/shard-0", "ppo_mlp/shard-1"] {
        admin
            .slow_shard(SlowShardRequest {
                name: shard.into(),
                delay_ms: 0,
            })
            .await
            .expect("clear slow shard");
    }
    admin.drain(DrainRequest {}).await.expect("drain");
    expect_code(
        &mut c,
        obs_request("ppo_mlp", 1, &[0.2; 32]),
        Code::Unavailable,
        "draining",
    )
    .await;
    let ready = c
        .server_ready(ServerReadyRequest {})
        .await
        .expect("ready")
        .into_inner();
    assert!(!ready.ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_refused_unless_enabled() {
    let p = FudoProcess::start(&[]);
    let mut admin = AdminClient::connect(p.url()).await.expect("connect admin");
    let err = admin
        .panic_actor(PanicActorRequest {
            name: "ppo_mlp/shard-0".into(),
            in_forward: false,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition);
}
