//! The model repository deploy scenarios run on (`cluster.models = "deploy-fixtures"`),
//! written into the run's folder before the nodes start:
//!
//! | model | version | weights | role |
//! |---|---|---|---|
//! | `ppo_mlp` | 1 | bundled | released: what the cluster serves at the start |
//! | `ppo_mlp` | 2 | version 1's | a good new version |
//! | `ppo_mlp` | 3 | version 1's with the action head negated | actions diverge |
//! | `ppo_mlp` | 4 | version 1's | a good version that faults can make bad (NaN, slow) |
//! | `lstm_policy` | 1 | bundled | released |
//! | `lstm_policy` | 2 | version 1's | a good new version |
//!
//! Every version is written through the same verification a node applies (checksums, config,
//! golden outputs), so a deploy loads them exactly as it would load a real retrained policy.
//! Versions with version 1's weights answer exactly as version 1, which keeps the recurrent
//! sessions' fault-free reference valid across deploys.

use std::path::Path;

use crate::model::{BUNDLED, ModelError, ModelRepository, writer::derive_version};

/// Writes the repository into `root` (which must not hold one already).
pub fn write_deploy_fixtures(root: &Path) -> Result<(), ModelError> {
    for bundled in BUNDLED {
        let dir = root.join(bundled.name).join(bundled.version);
        std::fs::create_dir_all(&dir).map_err(|source| ModelError::Io {
            file: dir.display().to_string(),
            source,
        })?;
        for (file, bytes) in bundled.files {
            let path = dir.join(file);
            std::fs::write(&path, bytes).map_err(|source| ModelError::Io {
                file: path.display().to_string(),
                source,
            })?;
        }
    }
    let repo = ModelRepository::open(root)?;
    // Same weights as version 1: good new versions (ppo_mlp 4 is the one faults make bad).
    for (name, version) in [("ppo_mlp", 2), ("ppo_mlp", 4), ("lstm_policy", 2)] {
        derive_version(
            &repo,
            name,
            1,
            version,
            "chaos fixture: version 1's weights",
            |_| Ok(()),
        )?;
    }
    derive_version(
        &repo,
        "ppo_mlp",
        1,
        3,
        "chaos fixture: version 1 with its action head negated (diverging actions)",
        |tensors| {
            let negated = tensors
                .get("action_net.weight")
                .ok_or_else(|| candle_core::Error::Msg("no action_net.weight".into()))?
                .neg()?;
            tensors.insert("action_net.weight".into(), negated);
            Ok(())
        },
    )?;
    for bundled in BUNDLED {
        repo.set_released(bundled.name, 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_repository_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        write_deploy_fixtures(tmp.path()).unwrap();
        let repo = ModelRepository::open(tmp.path()).unwrap();
        let list = repo.list().unwrap();
        assert_eq!(list["ppo_mlp"], vec![1, 2, 3, 4]);
        assert_eq!(list["lstm_policy"], vec![1, 2]);
        assert_eq!(repo.released_version("ppo_mlp").unwrap(), Some(1));
        for (name, versions) in &list {
            for v in versions {
                repo.load(name, *v, &candle_core::Device::Cpu).unwrap();
            }
        }
    }
}
