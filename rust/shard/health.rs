//! Store health: whether the opened SlateDB can still be trusted (a failed write, a failed
//! flush, fencing by a newer broker), the watcher that notices it closing under us, and the
//! flusher that gives local stores group commit without waiting out the flush interval.

use std::sync::{Arc, Mutex};

use slatedb::{CloseReason, Db, ErrorKind};
use tokio::sync::{mpsc, watch};

pub(super) const FENCED: &str =
    "fenced: a newer broker opened this store; this one no longer serves it";

/// Failure state of one opened SlateDB: set when a write or a flush failed, or the database
/// closed under us. Memory is then ahead of the store and must be rebuilt before serving.
#[derive(Default)]
pub(super) struct DbHealth {
    failed: Mutex<Option<String>>,
}

impl DbHealth {
    pub(super) fn fail(&self, reason: String) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(reason);
        }
    }

    pub(super) fn failure(&self) -> Option<String> {
        self.failed.lock().map(|f| f.clone()).unwrap_or(None)
    }
}

/// Records a SlateDB error against the database it came from.
pub(super) fn record_failure(health: &DbHealth, fenced: &watch::Sender<bool>, e: &slatedb::Error) {
    if matches!(e.kind(), ErrorKind::Closed(CloseReason::Fenced)) {
        tracing::error!("{FENCED}");
        fenced.send_replace(true);
    }
    health.fail(e.to_string());
}

/// Group commit without waiting out the flush interval: the actor kicks this task after each
/// write, and it flushes the WAL at once unless a flush is running, in which case the writes
/// that arrived meanwhile go in the next flush. Ends when the sender is dropped (reopen, close)
/// or the database closed. Used on local stores, where a flush is cheap; on S3 every flush is a
/// billed PUT, so the flush interval alone paces them.
pub(super) fn spawn_flusher(db: Db) -> mpsc::Sender<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if let Err(e) = db.flush().await {
                if matches!(e.kind(), ErrorKind::Closed(_)) {
                    return;
                }
                tracing::warn!("WAL flush failed: {e}");
            }
        }
    });
    tx
}

/// Watches a database for closing under us (fencing noticed by SlateDB, or a fatal error).
pub(super) fn watch_db(db: &Db, health: Arc<DbHealth>, fenced: Arc<watch::Sender<bool>>) {
    let mut rx = db.subscribe();
    tokio::spawn(async move {
        loop {
            let reason = rx.borrow_and_update().close_reason;
            match reason {
                Some(CloseReason::Clean) => return,
                Some(CloseReason::Fenced) => {
                    tracing::error!("{FENCED}");
                    fenced.send_replace(true);
                    health.fail(FENCED.into());
                    return;
                }
                Some(other) => {
                    health.fail(format!("the store closed: {other:?}"));
                    return;
                }
                None => {}
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}
