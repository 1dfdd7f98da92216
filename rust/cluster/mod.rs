//! Cluster mode (docs/cluster.md): many `silo serve` nodes over one store, coordinated by etcd
//! and nothing else.
//!
//! - **Membership**: each node holds an etcd lease of `--node-ttl` (session.rs keeps it alive)
//!   and a key `<prefix>/nodes/<id>` bound to it, holding its advertise address.
//! - **Ownership**: shard n is owned by whoever holds `<prefix>/shards/<n>`, a key bound to the
//!   owner's lease and created only if absent (an etcd transaction). The owner of a shard
//!   *should* be the rendezvous winner among live nodes (rendezvous.rs); a node that holds a
//!   shard it should not hands it over (stop taking calls, finish in-flight work, close
//!   SlateDB, delete the key), and the winner, seeing the key gone, creates it and opens the
//!   shard. A dead node's keys vanish with its lease, and the winners of its shards open them;
//!   SlateDB's fencing stops a zombie that still writes.
//! - **Routing**: every change of the keys is watched and written to the shard map
//!   (rust/broker/shards.rs): Local for shards this node opened, Remote(owner) for others,
//!   Moving while a shard has no owner.
//! - **Losing etcd**: a node that cannot renew its lease stops serving (the shard map's
//!   `serve_until`) before the lease can run out, drops its shards, and joins again.

mod rendezvous;
mod session;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_client::WatchOptions;
use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp};
use tokio::sync::{mpsc, oneshot};

use crate::broker::{Peer, Route, ShardMap, ShardOpener};
use crate::error::{Error, Result};
use crate::shard::ShardHandle;
use session::Session;

pub use rendezvous::owner as rendezvous_owner;

/// How often the node looks at its shards again without an etcd event (retries a failed open,
/// notices a fenced shard).
const TICK: Duration = Duration::from_millis(500);

/// A parsed `--cluster etcd://HOST:PORT[,HOST:PORT...]/PREFIX` with this node's identity.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster in etcd, e.g. `/silo/prod`.
    pub prefix: String,
    pub node: Peer,
    pub node_ttl: Duration,
}

impl ClusterConfig {
    /// Errors: `InvalidArgument` on `cluster` for a malformed URL, on `advertise` when the
    /// node has no address others can reach, on `node_ttl` under a second.
    pub fn parse(url: &str, node: Peer, node_ttl: Duration) -> Result<ClusterConfig> {
        let bad = || {
            Error::invalid(
                "cluster",
                format!("expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX, got {url:?}"),
            )
        };
        let rest = url.strip_prefix("etcd://").ok_or_else(bad)?;
        let (hosts, prefix) = rest.split_once('/').ok_or_else(bad)?;
        let prefix = prefix.trim_matches('/');
        if hosts.is_empty() || prefix.is_empty() {
            return Err(bad());
        }
        let endpoints: Vec<String> = hosts.split(',').map(|h| format!("http://{h}")).collect();
        if node.address.is_empty() {
            return Err(Error::invalid(
                "advertise",
                "a cluster node needs an address",
            ));
        }
        if node_ttl < Duration::from_secs(1) {
            return Err(Error::invalid("node_ttl", "must be at least 1s"));
        }
        Ok(ClusterConfig {
            endpoints,
            prefix: format!("/{prefix}"),
            node,
            node_ttl,
        })
    }

    fn nodes_prefix(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    fn shards_prefix(&self) -> String {
        format!("{}/shards/", self.prefix)
    }

    fn shard_key(&self, shard: u32) -> String {
        format!("{}{shard}", self.shards_prefix())
    }
}

/// What the membership task is asked to do.
enum Request {
    /// Leave the member list and hand every shard over; answered once none is left here. The
    /// task goes on watching (calls this node still gets are forwarded to the new owners).
    Leave(oneshot::Sender<()>),
    /// End the membership task and give the lease back.
    Stop(oneshot::Sender<()>),
}

/// This node's membership: a handle on the task that keeps it.
pub struct Cluster {
    stop: mpsc::Sender<Request>,
    members: Arc<RwLock<Vec<Peer>>>,
}

impl Cluster {
    /// Joins the cluster: connects to etcd, takes a lease and registers this node, then keeps
    /// the membership and the shards in a task of its own. Shards are acquired and opened in
    /// the background; the shard map shows them as they come.
    ///
    /// Errors: `StoreUnavailable` when etcd cannot be reached.
    pub async fn join(
        config: ClusterConfig,
        opener: ShardOpener,
        shards: Arc<ShardMap>,
    ) -> Result<Cluster> {
        let session = Session::start(&config, shards.clone()).await?;
        let members = Arc::new(RwLock::new(Vec::new()));
        let (stop, stop_rx) = mpsc::channel(1);
        let node = Node {
            config,
            opener,
            shards,
            local: HashMap::new(),
            view: View::default(),
            members: members.clone(),
            leaving: false,
        };
        tokio::spawn(node.run(session, stop_rx));
        Ok(Cluster { stop, members })
    }

    /// The live nodes, as this node last saw them.
    pub fn members(&self) -> Vec<Peer> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Leaves gracefully: the node leaves the member list and hands each of its shards over
    /// (closing it before releasing it); it keeps following the cluster, so the calls it
    /// still gets are forwarded to the new owners. Idempotent.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.stop.send(Request::Leave(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Ends the membership (after `leave`, or at once after losing etcd) and gives the lease
    /// back. Idempotent.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.stop.send(Request::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// What etcd says: live nodes (id -> address) and shard owners (shard -> node id).
#[derive(Debug, Default)]
struct View {
    nodes: BTreeMap<String, String>,
    owners: BTreeMap<u32, String>,
}

/// The membership task's state.
struct Node {
    config: ClusterConfig,
    opener: ShardOpener,
    shards: Arc<ShardMap>,
    /// Shards this node opened (it holds their keys).
    local: HashMap<u32, ShardHandle>,
    view: View,
    members: Arc<RwLock<Vec<Peer>>>,
    leaving: bool,
}

/// Why `serve` returned.
enum Outcome {
    Left(oneshot::Sender<()>),
    Lost(String),
}

impl Node {
    fn me(&self) -> &str {
        &self.config.node.node_id
    }

    async fn run(mut self, mut session: Session, mut stop: mpsc::Receiver<Request>) {
        loop {
            match self.serve(&mut session, &mut stop).await {
                Outcome::Left(done) => {
                    // Shards still here (a stop without a leave) close with the broker.
                    session.close().await;
                    tracing::info!("cluster membership ended");
                    let _ = done.send(());
                    return;
                }
                Outcome::Lost(reason) => {
                    tracing::error!("lost the cluster membership ({reason}); dropping every shard");
                    self.drop_all().await;
                    session.close().await;
                }
            }
            // Join again, until etcd answers or the node is told to stop.
            loop {
                match Session::start(&self.config, self.shards.clone()).await {
                    Ok(s) => {
                        tracing::info!("joined the cluster again");
                        session = s;
                        break;
                    }
                    Err(e) => tracing::warn!("joining the cluster again: {e}"),
                }
                tokio::select! {
                    request = stop.recv() => match request {
                        Some(Request::Leave(done)) => drop(done.send(())),
                        Some(Request::Stop(done)) => {
                            let _ = done.send(());
                            return;
                        }
                        None => return,
                    },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    /// Follows etcd and keeps the shards as the view says, until the node leaves or loses its
    /// lease.
    async fn serve(
        &mut self,
        session: &mut Session,
        stop: &mut mpsc::Receiver<Request>,
    ) -> Outcome {
        let mut leave_done: Option<oneshot::Sender<()>> = None;
        'watch: loop {
            let mut client = session.client.clone();
            let revision = match self.load(&mut client).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("reading the cluster from etcd: {e}");
                    tokio::select! {
                        reason = session.lost() => return Outcome::Lost(reason),
                        _ = tokio::time::sleep(TICK) => continue 'watch,
                    }
                }
            };
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1);
            let mut stream = match client
                .watch(self.config.prefix.clone() + "/", Some(options))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("watching the cluster in etcd: {e}");
                    continue 'watch;
                }
            };
            self.reconcile(session).await;
            let mut tick = tokio::time::interval(TICK);
            loop {
                if self.local.is_empty() {
                    if let Some(done) = leave_done.take() {
                        tracing::info!("left the cluster: every shard handed over");
                        let _ = done.send(());
                    }
                }
                tokio::select! {
                    message = stream.message() => match message {
                        Ok(Some(resp)) if !resp.canceled() => {
                            for event in resp.events() {
                                self.apply(event.event_type(), event.kv());
                            }
                            self.reconcile(session).await;
                        }
                        Ok(_) | Err(_) => {
                            tracing::warn!("the etcd watch ended; watching again");
                            continue 'watch;
                        }
                    },
                    reason = session.lost() => return Outcome::Lost(reason),
                    request = stop.recv() => match request {
                        Some(Request::Leave(done)) if !self.leaving => {
                            tracing::info!("leaving the cluster: handing every shard over");
                            self.leaving = true;
                            session.unregister(&self.config).await;
                            leave_done = Some(done);
                            self.reconcile(session).await;
                        }
                        Some(Request::Leave(done)) if self.local.is_empty() => {
                            let _ = done.send(());
                        }
                        // A second leave while shards are still moving: answered with the first.
                        Some(Request::Leave(done)) => drop(leave_done.replace(done)),
                        Some(Request::Stop(done)) => return Outcome::Left(done),
                        None => return Outcome::Left(oneshot::channel().0),
                    },
                    _ = tick.tick() => self.reconcile(session).await,
                }
            }
        }
    }

    /// Reads every node and owner key; returns the revision the view is at.
    async fn load(&mut self, client: &mut Client) -> Result<i64> {
        let resp = client
            .get(
                self.config.prefix.clone() + "/",
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(etcd_error)?;
        self.view = View::default();
        for kv in resp.kvs() {
            self.apply(EventType::Put, Some(kv));
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Applies one key's change to the view.
    fn apply(&mut self, kind: EventType, kv: Option<&etcd_client::KeyValue>) {
        let Some(kv) = kv else { return };
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let value = String::from_utf8_lossy(kv.value()).into_owned();
        if let Some(id) = key.strip_prefix(&self.config.nodes_prefix()) {
            match kind {
                EventType::Put => self.view.nodes.insert(id.to_string(), value),
                EventType::Delete => self.view.nodes.remove(id),
            };
            self.publish_members();
        } else if let Some(shard) = key
            .strip_prefix(&self.config.shards_prefix())
            .and_then(|s| s.parse::<u32>().ok())
        {
            match kind {
                EventType::Put => self.view.owners.insert(shard, value),
                EventType::Delete => self.view.owners.remove(&shard),
            };
        }
    }

    fn publish_members(&self) {
        if let Ok(mut m) = self.members.write() {
            *m = self
                .view
                .nodes
                .iter()
                .map(|(id, address)| Peer {
                    node_id: id.clone(),
                    address: address.clone(),
                })
                .collect();
        }
    }

    /// The node that should own `shard`: the rendezvous winner among live nodes (a leaving
    /// node counts as gone).
    fn desired(&self, shard: u32) -> Option<String> {
        let me = self.me();
        let live = self
            .view
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|id| !(self.leaving && *id == me));
        rendezvous::owner(shard, live).map(str::to_string)
    }

    /// Makes the shards and the shard map what the view says (see the module doc).
    async fn reconcile(&mut self, session: &Session) {
        let me = self.me().to_string();
        let mut to_open = Vec::new();
        let mut to_release = Vec::new();
        for shard in 0..self.shards.count() {
            let desired = self.desired(shard);
            let owner = self.view.owners.get(&shard).cloned();
            let local = self.local.get(&shard).cloned();
            match (owner.as_deref(), local) {
                (Some(o), Some(h)) if o == me => {
                    let elsewhere = desired.as_deref().is_some_and(|d| d != me);
                    if h.is_fenced() || elsewhere || self.leaving {
                        to_release.push((shard, h));
                    } else {
                        self.shards.set(shard, Route::Local(h));
                    }
                }
                (Some(o), None) if o == me => {
                    // Ours in etcd but not open: an open that failed, or a key from before.
                    if desired.as_deref() == Some(me.as_str()) && !self.leaving {
                        self.shards.set(shard, Route::Moving);
                        to_open.push(shard);
                    } else {
                        self.release_key(session, shard).await;
                    }
                }
                (owner, Some(h)) => {
                    // Another node holds the key (or nobody): this node's copy is stale.
                    tracing::warn!(shard, ?owner, "a shard this node had is owned elsewhere");
                    self.local.remove(&shard);
                    self.shards.set(shard, Route::Moving);
                    h.hand_over().await;
                    self.set_route(shard, owner.map(str::to_string));
                }
                (Some(o), None) => self.set_route(shard, Some(o.to_string())),
                (None, None) => {
                    if desired.as_deref() == Some(me.as_str()) && !self.leaving {
                        if session.acquire(&self.config, shard).await {
                            // Ours from now on: calls wait here for the open instead of
                            // going back to a former owner.
                            self.shards.set(shard, Route::Moving);
                            self.view.owners.insert(shard, me.clone());
                            to_open.push(shard);
                        }
                    } else {
                        self.shards.set(shard, Route::Moving);
                    }
                }
            }
        }
        // Hand-overs: stop taking calls, finish what was sent, close; then release the key.
        let released = futures::future::join_all(to_release.into_iter().map(|(shard, h)| {
            self.shards.set(shard, Route::Moving);
            async move {
                h.hand_over().await;
                shard
            }
        }))
        .await;
        for shard in released {
            self.local.remove(&shard);
            self.release_key(session, shard).await;
            tracing::info!(shard, "shard handed over");
        }
        // Opens, all at once (each fences any older writer of the shard).
        let opened = futures::future::join_all(to_open.into_iter().map(|shard| {
            let opener = &self.opener;
            async move { (shard, opener.open(shard).await) }
        }))
        .await;
        for (shard, r) in opened {
            match r {
                Ok(h) => {
                    tracing::info!(shard, "shard opened: serving it");
                    self.local.insert(shard, h.clone());
                    self.shards.set(shard, Route::Local(h));
                }
                // Kept: the next tick tries again (the key stays ours meanwhile).
                Err(e) => tracing::error!(shard, "opening a shard this node owns failed: {e}"),
            }
        }
    }

    /// Routes a shard to its owner (Remote when the owner is a live node, else Moving).
    fn set_route(&self, shard: u32, owner: Option<String>) {
        let route = match owner.and_then(|o| self.view.nodes.get(&o).map(|a| (o, a.clone()))) {
            Some((node_id, address)) if node_id != self.me() => {
                Route::Remote(Peer { node_id, address })
            }
            _ => Route::Moving,
        };
        self.shards.set(shard, route);
    }

    async fn release_key(&mut self, session: &Session, shard: u32) {
        session.release(&self.config, shard).await;
        if self.view.owners.get(&shard).map(String::as_str) == Some(self.me()) {
            self.view.owners.remove(&shard);
        }
        self.shards.set(shard, Route::Moving);
    }

    /// After losing the lease: every local shard stops at once and is closed (its keys went
    /// with the lease).
    async fn drop_all(&mut self) {
        let local: Vec<(u32, ShardHandle)> = self.local.drain().collect();
        for (shard, _) in &local {
            self.shards.set(*shard, Route::Moving);
        }
        futures::future::join_all(local.iter().map(|(_, h)| h.hand_over())).await;
        self.view = View::default();
        for shard in 0..self.shards.count() {
            self.shards.set(shard, Route::Moving);
        }
    }
}

/// An etcd failure, as callers see it.
pub(crate) fn etcd_error(e: etcd_client::Error) -> Error {
    Error::StoreUnavailable(format!("etcd: {e}"))
}

/// The transactions on owner keys: create only if absent (bound to the lease), delete only if
/// still ours.
fn acquire_txn(key: &str, me: &str, lease: i64) -> Txn {
    Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            me,
            Some(PutOptions::new().with_lease(lease)),
        )])
}

fn release_txn(key: &str, me: &str) -> Txn {
    Txn::new()
        .when([Compare::value(key, CompareOp::Equal, me)])
        .and_then([TxnOp::delete(key, None)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            node_id: "n1".into(),
            address: "127.0.0.1:7070".into(),
        }
    }

    #[test]
    fn parses_the_cluster_url() {
        let c =
            ClusterConfig::parse("etcd://a:1,b:2/silo/x", peer(), Duration::from_secs(5)).unwrap();
        assert_eq!(c.endpoints, vec!["http://a:1", "http://b:2"]);
        assert_eq!(c.prefix, "/silo/x");
        assert_eq!(c.shard_key(3), "/silo/x/shards/3");
        for bad in ["a:1/p", "etcd://a:1", "etcd://a:1/", "etcd:///p"] {
            let e = ClusterConfig::parse(bad, peer(), Duration::from_secs(5)).unwrap_err();
            assert!(e.to_string().starts_with("cluster:"), "{bad}: {e}");
        }
        let e =
            ClusterConfig::parse("etcd://a:1/p", peer(), Duration::from_millis(500)).unwrap_err();
        assert!(e.to_string().starts_with("node_ttl:"));
    }
}
