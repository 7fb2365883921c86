use std::sync::Arc;

use candle_core::Device;
use proptest::prelude::*;

use super::*;
use crate::{config::ModelsConfig, metrics::Metrics, model};

fn host(version: &str) -> Arc<ModelHost> {
    let mut loaded = model::bundled_models(&Device::Cpu)
        .expect("bundled models load")
        .into_iter()
        .find(|m| m.name == "ppo_mlp")
        .expect("ppo_mlp is bundled");
    loaded.version = version.to_owned();
    Arc::new(ModelHost::new(
        loaded,
        &ModelsConfig::default(),
        Arc::new(Metrics::new()),
    ))
}

#[test]
fn versions_are_named_in_their_actor_names() {
    let h = host("7");
    assert_eq!(h.prefix, "ppo_mlp@7");
    assert_eq!(h.router_name(), "ppo_mlp@7/router");
    assert_eq!(h.slots[0].name, "ppo_mlp@7/shard-0");
}

#[test]
fn a_switch_changes_new_picks_but_not_taken_snapshots() {
    let served = ServedModel::new(host("1"));
    served.add(host("2")).unwrap();
    let before = served.routing();
    served.set_live("2").unwrap();
    assert_eq!(before.live_host().version, "1");
    assert_eq!(served.live().version, "2");
    assert_eq!(served.routing().for_stateless("", 0).unwrap().version, "2");
    assert_eq!(served.routing().for_stateless("1", 0).unwrap().version, "1");
    assert!(served.routing().for_stateless("3", 0).is_none());
}

#[test]
fn sessions_stay_on_their_version_until_it_is_gone() {
    let served = ServedModel::new(host("1"));
    served.add(host("2")).unwrap();
    served.set_live("2").unwrap();
    let pick = served.routing().for_session("1");
    assert_eq!(
        (pick.host.version.as_str(), pick.migrated_from),
        ("1", None)
    );
    served.remove("1").unwrap();
    let pick = served.routing().for_session("1");
    assert_eq!(pick.host.version, "2");
    assert_eq!(pick.migrated_from.as_deref(), Some("1"));
}

#[test]
fn rules_refuse_what_is_not_loaded_and_the_live_version_stays() {
    let served = ServedModel::new(host("1"));
    assert_eq!(
        served.set_live("2"),
        Err(RoutingError::NotLoaded("2".into()))
    );
    assert_eq!(
        served.set_canary(Some(("2", 10))),
        Err(RoutingError::NotLoaded("2".into()))
    );
    assert_eq!(
        served.set_shadow(Some(("2", 1000))),
        Err(RoutingError::NotLoaded("2".into()))
    );
    assert_eq!(
        served.remove("1").unwrap_err(),
        RoutingError::Live("1".into())
    );
    served.add(host("2")).unwrap();
    assert_eq!(
        served.add(host("2")).unwrap_err(),
        RoutingError::AlreadyLoaded("2".into())
    );
    served.set_canary(Some(("2", 300))).unwrap();
    served.set_shadow(Some(("2", 1000))).unwrap();
    // Removing the canary also removes the rules that name it.
    served.remove("2").unwrap();
    let r = served.routing();
    assert!(r.canary.is_none() && r.shadow.is_none());
    assert_eq!(r.live, "1");
}

#[test]
fn the_shadow_never_mirrors_to_the_version_that_answered() {
    let served = ServedModel::new(host("1"));
    served.add(host("2")).unwrap();
    served.set_shadow(Some(("2", 1000))).unwrap();
    assert_eq!(served.routing().shadow_host("1", 999).unwrap().version, "2");
    assert!(served.routing().shadow_host("2", 0).is_none());
    served.set_shadow(Some(("2", 250))).unwrap();
    assert!(served.routing().shadow_host("1", 249).is_some());
    assert!(
        served.routing().shadow_host("1", 250).is_none(),
        "outside the share"
    );
}

#[test]
fn session_buckets_spread_evenly() {
    let n = 20_000;
    let in_share = (0..n)
        .filter(|i| session_bucket(&format!("session-{i}")) < 100)
        .count();
    let share = in_share as f64 / n as f64;
    assert!((share - 0.1).abs() < 0.01, "{share}");
}

proptest! {
    /// Whatever deploy operations run, in any order: the live version is always loaded, a
    /// canary or shadow rule only names a loaded version, and a session is always routed to a
    /// loaded version (its own while loaded).
    #[test]
    fn routing_rules_only_name_loaded_versions(ops in prop::collection::vec((0u8..5, 1u8..4, 0u32..1200), 1..40)) {
        let hosts: Vec<_> = (1..4).map(|v| host(&v.to_string())).collect();
        let served = ServedModel::new(hosts[0].clone());
        for (op, v, share) in ops {
            let version = v.to_string();
            let _ = match op {
                0 => served.add(hosts[usize::from(v) - 1].clone()),
                1 => served.set_live(&version),
                2 => served.set_canary(Some((&version, share))),
                3 => served.set_shadow(Some((&version, share))),
                _ => served.remove(&version).map(|_| ()),
            };
            let r = served.routing();
            prop_assert!(r.hosts.contains_key(&r.live));
            if let Some((c, p)) = &r.canary {
                prop_assert!(r.hosts.contains_key(c));
                prop_assert!(*p <= 1000);
            }
            if let Some((s, p)) = &r.shadow {
                prop_assert!(r.hosts.contains_key(s));
                prop_assert!(*p <= 1000);
            }
            for pinned in ["1", "2", "3"] {
                let pick = r.for_session(pinned);
                prop_assert!(r.hosts.contains_key(&pick.host.version));
                prop_assert_eq!(pick.migrated_from.is_none(), r.hosts.contains_key(pinned));
            }
        }
    }
}
