//! The background prober: health-checks ejected endpoints and re-admits those that answer
//! SERVING.

use std::sync::{Weak, atomic::Ordering};

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::{HEALTH_SERVICE, Inner};

/// Health-checks ejected endpoints every `probe_interval` and re-admits those that answer
/// `SERVING`. Holds only a `Weak` between rounds, so it ends once the last client is dropped.
pub(super) async fn probe_loop(inner: Weak<Inner>) {
    let Some(interval) = inner.upgrade().map(|i| i.config.probe_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (probes, timeout) = {
            let Some(inner) = inner.upgrade() else { return };
            let probes: Vec<(usize, HealthClient<Channel>)> = inner
                .endpoints
                .iter()
                .enumerate()
                .filter(|(_, e)| e.ejected.load(Ordering::Relaxed))
                .map(|(i, e)| (i, e.health.clone()))
                .collect();
            (probes, inner.config.deadline.max(interval))
        };
        if probes.is_empty() {
            continue;
        }
        let mut set = tokio::task::JoinSet::new();
        for (idx, mut health) in probes {
            set.spawn(async move {
                let mut req = tonic::Request::new(HealthCheckRequest {
                    service: HEALTH_SERVICE.to_owned(),
                });
                req.set_timeout(timeout);
                let serving = matches!(
                    tokio::time::timeout(timeout, health.check(req)).await,
                    Ok(Ok(resp)) if resp.get_ref().status == ServingStatus::Serving as i32
                );
                (idx, serving)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((idx, true)) = joined else { continue };
            let Some(inner) = inner.upgrade() else { return };
            let e = &inner.endpoints[idx];
            e.consecutive_failures.store(0, Ordering::Relaxed);
            if e.ejected.swap(false, Ordering::Relaxed) {
                tracing::info!(url = %e.endpoint.url, "endpoint re-admitted: health check SERVING");
            }
        }
    }
}
