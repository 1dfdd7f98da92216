//! The shard map: for each shard of the store, where calls for it go right now — an actor in
//! this process, another node of the cluster, or nowhere yet (moving). Without a cluster every
//! shard is local and the map never changes; in a cluster the membership task
//! (rust/cluster/) rewrites it as shards move (docs/cluster.md#routing).

use std::sync::RwLock;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::shard::ShardHandle;

/// Another node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: String,
    /// `HOST:PORT` of its gRPC server (its `--advertise`).
    pub address: String,
}

/// Where calls for one shard go.
#[derive(Clone)]
pub enum Route {
    /// This process owns the shard: its actor.
    Local(ShardHandle),
    /// Another node owns it.
    Remote(Peer),
    /// No node serves it right now (it is moving, or its owner died and the lease has not
    /// run out yet).
    Moving,
}

/// Every shard's route; cheap to read on every call, and awaitable for changes.
pub struct ShardMap {
    count: u32,
    routes: watch::Sender<Vec<Route>>,
    /// In a cluster: until when this node may serve its shards (its etcd lease is surely
    /// alive until then). Checked on every call, so a node cut off from etcd stops serving
    /// the moment its lease may have run out, whatever its tasks are doing.
    serve_until: RwLock<Option<Instant>>,
}

impl ShardMap {
    /// A map of `count` shards, none served yet.
    pub fn new(count: u32) -> ShardMap {
        let (routes, _) = watch::channel(vec![Route::Moving; count as usize]);
        ShardMap {
            count,
            routes,
            serve_until: RwLock::new(None),
        }
    }

    /// The store's shard count.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn route(&self, shard: u32) -> Route {
        self.routes
            .borrow()
            .get(shard as usize)
            .cloned()
            .unwrap_or(Route::Moving)
    }

    /// The actor of a shard this process serves, or `ShardUnavailable` saying where it is.
    pub fn local(&self, shard: u32) -> Result<ShardHandle> {
        match self.route(shard) {
            Route::Local(h) if self.may_serve() => Ok(h),
            Route::Local(_) => Err(Error::ShardUnavailable {
                shard,
                reason: "this node cannot renew its cluster membership".into(),
            }),
            Route::Remote(peer) => Err(Error::ShardUnavailable {
                shard,
                reason: format!(
                    "it is served by node {:?} at {}",
                    peer.node_id, peer.address
                ),
            }),
            Route::Moving => Err(Error::ShardUnavailable {
                shard,
                reason: "it is moving between nodes".into(),
            }),
        }
    }

    /// Sets until when this node may serve (None: without limit).
    pub fn set_serve_until(&self, until: Option<Instant>) {
        if let Ok(mut u) = self.serve_until.write() {
            *u = until;
        }
    }

    fn may_serve(&self) -> bool {
        match self.serve_until.read() {
            Ok(u) => u.is_none_or(|t| Instant::now() < t),
            Err(_) => false,
        }
    }

    /// Every shard this process serves, in shard order.
    pub fn locals(&self) -> Vec<ShardHandle> {
        self.routes
            .borrow()
            .iter()
            .filter_map(|r| match r {
                Route::Local(h) => Some(h.clone()),
                Route::Remote(_) | Route::Moving => None,
            })
            .collect()
    }

    /// Every route, in shard order.
    pub fn snapshot(&self) -> Vec<Route> {
        self.routes.borrow().clone()
    }

    /// Sets one shard's route (waking the calls waiting for a change).
    pub fn set(&self, shard: u32, route: Route) {
        self.routes.send_modify(|routes| {
            if let Some(slot) = routes.get_mut(shard as usize) {
                *slot = route;
            }
        });
    }

    /// A receiver that sees every later change of the map.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Route>> {
        self.routes.subscribe()
    }
}

/// Waits until the map changes after `rx` last looked, or `limit` passes; false on timeout.
pub async fn changed(rx: &mut watch::Receiver<Vec<Route>>, limit: Duration) -> bool {
    matches!(tokio::time::timeout(limit, rx.changed()).await, Ok(Ok(())))
}
