//! The lease table: live attempts by task id, with an expiry-ordered timer. Heartbeats move
//! an expiry in memory only (a lease extension alone need not be durable: docs/api.md#leases).

use std::collections::{BTreeSet, HashMap};

use crate::proto::records;

/// A live attempt, with the records it changes when it ends (so that a report reads nothing
/// from the store). Every write of key J or A of a running job updates these copies.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// The job as stored (key J).
    pub job: records::JobRecord,
    /// The attempt as stored (key A): its task id, worker and start.
    pub attempt: records::AttemptRecord,
    /// Concurrency keys whose slot this attempt holds.
    pub keys: Vec<String>,
    pub expires_at_ms: i64,
    /// The job was cancelled while this attempt ran; the worker learns it on heartbeat.
    pub cancelled: bool,
}

#[derive(Debug, Default)]
pub struct RunningTasks {
    by_task: HashMap<String, Running>,
    expiry: BTreeSet<(i64, String)>,
}

impl RunningTasks {
    pub fn len(&self) -> usize {
        self.by_task.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }

    pub fn get(&self, task_id: &str) -> Option<&Running> {
        self.by_task.get(task_id)
    }

    /// For changes that leave the expiry alone (a heartbeat cursor, a cancel).
    pub fn get_mut(&mut self, task_id: &str) -> Option<&mut Running> {
        self.by_task.get_mut(task_id)
    }

    pub fn insert(&mut self, task_id: String, lease: Running) {
        self.expiry.insert((lease.expires_at_ms, task_id.clone()));
        if let Some(old) = self.by_task.insert(task_id.clone(), lease) {
            self.expiry.remove(&(old.expires_at_ms, task_id));
        }
    }

    /// Moves a lease's expiry. Returns false if there is no such lease.
    pub fn extend(&mut self, task_id: &str, expires_at_ms: i64) -> bool {
        let Some(lease) = self.by_task.get_mut(task_id) else {
            return false;
        };
        self.expiry
            .remove(&(lease.expires_at_ms, task_id.to_string()));
        lease.expires_at_ms = expires_at_ms;
        self.expiry.insert((expires_at_ms, task_id.to_string()));
        true
    }

    pub fn remove(&mut self, task_id: &str) -> Option<Running> {
        let lease = self.by_task.remove(task_id)?;
        self.expiry
            .remove(&(lease.expires_at_ms, task_id.to_string()));
        Some(lease)
    }

    /// The earliest expiry, if any lease is live.
    pub fn next_expiry(&self) -> Option<i64> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Removes and returns every lease whose expiry is at or before `now_ms`.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<(String, Running)> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.expiry.first() {
            if *t > now_ms {
                break;
            }
            let Some((_, task_id)) = self.expiry.pop_first() else {
                break;
            };
            if let Some(lease) = self.by_task.remove(&task_id) {
                out.push((task_id, lease));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(expires_at_ms: i64) -> Running {
        Running {
            job: records::JobRecord::default(),
            attempt: records::AttemptRecord::default(),
            keys: Vec::new(),
            expires_at_ms,
            cancelled: false,
        }
    }

    #[test]
    fn extension_moves_the_timer() {
        let mut t = RunningTasks::default();
        t.insert("a".into(), lease(10));
        t.insert("b".into(), lease(20));
        assert!(t.extend("a", 30));
        assert_eq!(t.next_expiry(), Some(20));
        let expired: Vec<String> = t.take_expired(25).into_iter().map(|(k, _)| k).collect();
        assert_eq!(expired, vec!["b".to_string()]);
        assert_eq!(t.len(), 1);
        assert!(t.remove("a").is_some());
        assert!(t.is_empty());
        assert_eq!(t.next_expiry(), None);
        assert!(!t.extend("a", 40));
    }
}
