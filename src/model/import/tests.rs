use std::path::Path;

use candle_core::Device;

use super::*;
use crate::model::{check_golden, loader::GOLDEN_FILE};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/ppo_mlp/fixtures")
        .join(name)
}

fn v1_golden() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/ppo_mlp/1")
            .join(GOLDEN_FILE),
    )
    .unwrap()
}

fn options(version: Option<u64>) -> ImportOptions {
    ImportOptions {
        name: "ppo_mlp".into(),
        version,
        activation: Activation::Tanh,
    }
}

/// The fixtures hold version 1's weights (written by models/sb3_fixture.py), so an import that
/// reads them right reproduces version 1's PyTorch golden outputs.
#[test]
fn imports_reproduce_pytorch_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = ModelRepository::new(tmp.path());
    let from_zip = import(&repo, &fixture("ppo_sb3.zip"), &options(None)).unwrap();
    assert_eq!(from_zip.version, "1");
    check_golden(from_zip.policy.as_ref(), &v1_golden()).unwrap();
    assert!(
        from_zip
            .manifest
            .trained_by
            .contains("stable-baselines3 save, ppo_sb3.zip")
    );
    assert_eq!(
        from_zip
            .manifest
            .frameworks
            .get("stable_baselines3")
            .map(String::as_str),
        Some("2.4.0")
    );
    let from_pth = import(&repo, &fixture("state_dict.pth"), &options(None)).unwrap();
    assert_eq!(from_pth.version, "2", "the next version number");
    check_golden(from_pth.policy.as_ref(), &v1_golden()).unwrap();
    assert_eq!(from_pth.config.net_arch.pi, vec![64, 64]);
    assert_eq!(
        (from_pth.config.obs_dim, from_pth.config.n_actions),
        (32, 3)
    );
    // The written version loads on its own, verified.
    repo.load("ppo_mlp", 2, &Device::Cpu).unwrap();
    let again = import(&repo, &fixture("state_dict.pth"), &options(Some(2)));
    assert!(again.unwrap_err().to_string().contains("already exists"));
}

#[test]
fn the_wrong_activation_fails_its_own_golden_check_against_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = ModelRepository::new(tmp.path());
    let relu = ImportOptions {
        activation: Activation::Relu,
        ..options(None)
    };
    // It imports (the file cannot say), but does not reproduce PyTorch's outputs.
    let imported = import(&repo, &fixture("state_dict.pth"), &relu).unwrap();
    assert!(check_golden(imported.policy.as_ref(), &v1_golden()).is_err());
}

#[test]
fn unusable_files_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = ModelRepository::new(tmp.path());
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not a model").unwrap();
    let err = import(&repo, &text, &options(None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.txt: not a zip archive"), "{err}");

    let other_zip = tmp.path().join("other.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&other_zip).unwrap());
        z.start_file("readme", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut z, b"hi").unwrap();
        z.finish().unwrap();
    }
    let err = import(&repo, &other_zip, &options(None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("neither a stable-baselines3 zip"), "{err}");
    assert!(
        repo.versions("ppo_mlp").unwrap().is_empty(),
        "nothing was written"
    );
}

#[test]
fn only_discrete_mlp_policies_are_read() {
    let file = Path::new("policy.pth");
    let tensors = read_tensors(&fixture("state_dict.pth")).unwrap().tensors;
    let with = |name: &str| {
        let mut t = tensors.clone();
        t.insert(
            name.into(),
            Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        mlp_config(file, &t, Activation::Tanh)
            .unwrap_err()
            .to_string()
    };
    assert!(with("log_std").contains("continuous-action"));
    assert!(with("lstm_actor.weight_ih_l0").contains("recurrent policy"));
    assert!(with("features_extractor.cnn.0.weight").contains("features extractor"));
    assert!(with("critic.bias").contains("unexpected tensor `critic.bias`"));
    let mut no_head = tensors.clone();
    no_head.remove("action_net.weight");
    let err = mlp_config(file, &no_head, Activation::Tanh)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing tensor `action_net.weight`"), "{err}");
}
