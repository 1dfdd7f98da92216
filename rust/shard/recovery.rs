//! Recovery: after a failed write, memory may be ahead of the store; the shard reopens the store
//! and rebuilds from it before it serves again. See docs/architecture.md#durability.

use std::sync::Arc;
use std::time::Duration;

use super::health::{spawn_flusher, watch_db, DbHealth, FENCED};
use super::parked::Waiter;
use super::Shard;
use crate::error::Error;

impl Shard {
    /// After a failed write the store may hold less than memory does: reopen the store and
    /// rebuild from it, one attempt at most a second. The second is counted from the end of a
    /// failed attempt: on a stalled store an attempt lasts as long as the S3 client's retries,
    /// and the calls that queued meanwhile are refused at once instead of waiting out one more.
    /// Never after fencing: the newer broker owns the store.
    pub(super) async fn recover(&mut self) -> std::result::Result<(), String> {
        if *self.fenced.borrow() {
            return Err(FENCED.into());
        }
        let Some(reason) = self.health.failure() else {
            return Ok(());
        };
        if self.clock.now_ms() < self.recover_after_ms {
            return Err(reason);
        }
        // Parked long-polls answer UNAVAILABLE; sessions keep waiting for the store to be back.
        let waiters = std::mem::take(&mut self.parked);
        for w in waiters {
            match w {
                Waiter::Lease(w) => {
                    let _ = w.reply.send(Err(Error::StoreUnavailable(reason.clone())));
                }
                session @ Waiter::Session(_) => self.parked.push_back(session),
            }
        }
        for reply in self.waiters.drain() {
            let _ = reply.send(Err(Error::StoreUnavailable(reason.clone())));
        }
        let attempt = self.reopen(&reason).await;
        self.recover_after_ms = self.clock.now_ms() + 1000;
        attempt
    }

    /// Opens the store anew in place of the failed database and rebuilds every cache from it.
    async fn reopen(&mut self, reason: &str) -> std::result::Result<(), String> {
        let db = match self.store.open().await {
            Ok(db) => db,
            Err(e) => return Err(format!("{reason}; reopening failed: {e}")),
        };
        let old = std::mem::replace(&mut self.db, db);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), old.close()).await;
        });
        self.health = Arc::new(DbHealth::default());
        watch_db(&self.db, self.health.clone(), self.fenced.clone());
        self.flush_now = self
            .store
            .eager_flush()
            .then(|| spawn_flusher(self.db.clone()));
        if let Err(e) = self.load().await {
            self.health.fail(e.to_string());
            return Err(e.to_string());
        }
        tracing::info!("the store is back: shard reopened and rebuilt");
        Ok(())
    }
}
