//! One membership session: an etcd lease of `--node-ttl`, kept alive by a task of its own, and
//! this node's key bound to it (docs/cluster.md#membership).
//!
//! The keep-alive sends a renewal every quarter of the TTL. A renewal sent at time t and
//! answered proves the lease alive until at least t + TTL (etcd counts from when it received
//! it, which is later). The node serves until t + ¾ TTL after the last answered renewal
//! (`ShardMap::set_serve_until`, checked on every call), so a node cut off from etcd — or
//! paused, or starved — stops serving a quarter TTL before anyone else can own its shards.
//! Past that point the session is lost: the node drops its shards and joins again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, PutOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{acquire_txn, etcd_error, release_txn, ClusterConfig};
use crate::broker::ShardMap;
use crate::error::Result;

pub(super) struct Session {
    pub(super) client: Client,
    lease: i64,
    /// Why the session ended (None while it holds).
    lost: watch::Receiver<Option<String>>,
    keepalive: JoinHandle<()>,
}

impl Session {
    /// Connects, takes a lease and registers this node.
    /// Errors: `StoreUnavailable` naming etcd when it cannot be reached.
    pub(super) async fn start(config: &ClusterConfig, shards: Arc<ShardMap>) -> Result<Session> {
        let ttl = config.node_ttl;
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(ttl / 2)
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        let mut client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(etcd_error)?;
        let granted_at = Instant::now();
        let ttl_s = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let lease = client
            .lease_grant(ttl_s, None)
            .await
            .map_err(etcd_error)?
            .id();
        let serve_for = ttl * 3 / 4;
        shards.set_serve_until(Some(granted_at + serve_for));
        client
            .put(
                config.nodes_prefix() + &config.node.node_id,
                config.node.address.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .map_err(etcd_error)?;
        let (lost_tx, lost) = watch::channel(None);
        let keepalive = tokio::spawn(keep_alive(
            client.clone(),
            lease,
            ttl,
            granted_at,
            shards,
            lost_tx,
        ));
        tracing::info!(node = %config.node.node_id, lease, "joined the cluster");
        Ok(Session {
            client,
            lease,
            lost,
            keepalive,
        })
    }

    /// Resolves with the reason once the session is lost.
    pub(super) async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the keep-alive task ended".into(),
        };
        reason
    }

    /// Creates `shard`'s owner key for this node if nobody holds it; whether it did.
    pub(super) async fn acquire(&self, config: &ClusterConfig, shard: u32) -> bool {
        let txn = acquire_txn(&config.shard_key(shard), &config.node.node_id, self.lease);
        match self.client.clone().txn(txn).await {
            Ok(r) => r.succeeded(),
            Err(e) => {
                tracing::warn!(shard, "taking a shard's key: {e}");
                false
            }
        }
    }

    /// Deletes `shard`'s owner key if this node still holds it.
    pub(super) async fn release(&self, config: &ClusterConfig, shard: u32) {
        let txn = release_txn(&config.shard_key(shard), &config.node.node_id);
        if let Err(e) = self.client.clone().txn(txn).await {
            // The key goes with the lease anyway (at the latest when the node leaves).
            tracing::warn!(shard, "releasing a shard's key: {e}");
        }
    }

    /// Takes this node out of the member list (its shards stay its own until released).
    pub(super) async fn unregister(&self, config: &ClusterConfig) {
        let key = config.nodes_prefix() + &config.node.node_id;
        if let Err(e) = self.client.clone().delete(key, None).await {
            tracing::warn!("leaving the member list: {e}");
        }
    }

    /// Ends the session: stops the keep-alive and gives the lease back (its keys go with it).
    pub(super) async fn close(&mut self) {
        self.keepalive.abort();
        let revoke = self.client.lease_revoke(self.lease);
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), revoke).await {
            tracing::debug!("revoking the lease: {e}");
        }
    }
}

/// Renews the lease every quarter TTL; moves `serve_until` on each answered renewal; reports
/// the session lost when the lease ran out or could not be renewed in time.
async fn keep_alive(
    mut client: Client,
    lease: i64,
    ttl: Duration,
    granted_at: Instant,
    shards: Arc<ShardMap>,
    lost: watch::Sender<Option<String>>,
) {
    let interval = ttl / 4;
    let serve_for = ttl * 3 / 4;
    let mut last_ok = granted_at;
    let mut stream = None;
    loop {
        let sent = Instant::now();
        if stream.is_none() {
            stream = tokio::time::timeout(interval, client.lease_keep_alive(lease))
                .await
                .ok()
                .and_then(|r| r.ok());
        }
        if let Some((keeper, answers)) = stream.as_mut() {
            let renewed = tokio::time::timeout(interval, async {
                keeper.keep_alive().await?;
                answers.message().await
            })
            .await;
            match renewed {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => {
                    last_ok = sent;
                    shards.set_serve_until(Some(sent + serve_for));
                }
                Ok(Ok(Some(_))) => {
                    let _ = lost.send(Some("the etcd lease expired".into()));
                    return;
                }
                Ok(Ok(None)) | Ok(Err(_)) => stream = None,
                Err(_) => {}
            }
        }
        if Instant::now() >= last_ok + serve_for {
            let _ = lost.send(Some(format!(
                "the etcd lease could not be renewed for {} ms",
                last_ok.elapsed().as_millis()
            )));
            return;
        }
        tokio::time::sleep_until((sent + interval).into()).await;
    }
}
