//! The audit log (docs/security.md#audit-log): one structured line per operator action that
//! succeeded, naming the token, the tenant and what was acted on.
//!
//! `Broker::call_raw` (rust/rpc.rs) serves each operator RPC through `audited`, which writes
//! the line once the action is durable; the line goes to the core's log (stderr) with the
//! target `silo::audit`, e.g.
//! `INFO audit rpc=Cancel token="ops" tenant="acme" job_ids=["j1"]`.
//! Calls of a trusted caller (no auth file, the embedded broker) name the token `-`.

use std::fmt::Write;

use crate::auth::Caller;
use crate::proto::wire;
use crate::rpc::Rpc;

/// What an operator action's request names, for its audit line.
pub trait Audited {
    /// The tenant acted on.
    fn tenant(&self) -> &str;
    /// What else the line says (` job_ids=[..]`, ` queue=..`, ` filter=..`), each starting with
    /// a space.
    fn subject(&self) -> String;
}

/// What an operator action's reply adds to its audit line (the counts of a bulk action).
pub trait AuditedReply {
    fn outcome(&self) -> String {
        String::new()
    }
}

/// The audit line of `rpc` made by `caller` with `req`, answered `reply`.
pub fn line(caller: &Caller, rpc: Rpc, req: &impl Audited, reply: &impl AuditedReply) -> String {
    format!(
        "audit rpc={} token={:?} tenant={:?}{}{}",
        rpc.name(),
        caller.name().unwrap_or("-"),
        req.tenant(),
        req.subject(),
        reply.outcome()
    )
}

/// Writes the audit line (target `silo::audit`).
pub fn record(caller: &Caller, rpc: Rpc, req: &impl Audited, reply: &impl AuditedReply) {
    tracing::info!(target: "silo::audit", "{}", line(caller, rpc, req, reply));
}

macro_rules! audited_job {
    ($($ty:ty),* $(,)?) => {
        $(impl Audited for $ty {
            fn tenant(&self) -> &str {
                &self.tenant
            }
            fn subject(&self) -> String {
                format!(" job_ids=[{:?}]", self.id)
            }
        })*
    };
}

audited_job!(
    wire::CancelRequest,
    wire::RestartJobRequest,
    wire::ExpediteJobRequest,
    wire::DeleteJobRequest,
);

impl Audited for wire::QueueRef {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn subject(&self) -> String {
        format!(" queue={:?}", self.queue)
    }
}

impl Audited for wire::ScheduleRef {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn subject(&self) -> String {
        format!(" schedule={:?}", self.name)
    }
}

impl Audited for wire::Schedule {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn subject(&self) -> String {
        format!(
            " schedule={:?} cron={:?} interval_ms={} paused={}",
            self.name, self.cron, self.interval_ms, self.paused
        )
    }
}

impl Audited for wire::BulkJobsRequest {
    fn tenant(&self) -> &str {
        self.filter.as_ref().map_or("", |f| f.tenant.as_str())
    }
    fn subject(&self) -> String {
        let mut out = String::from(" filter={");
        if let Some(f) = &self.filter {
            let mut parts = Vec::new();
            if !f.queue.is_empty() {
                parts.push(format!("queue={:?}", f.queue));
            }
            if !f.statuses.is_empty() {
                let names: Vec<&str> = f
                    .statuses
                    .iter()
                    .map(|s| wire::JobStatus::try_from(*s).map_or("?", |s| s.as_str_name()))
                    .collect();
                parts.push(format!("statuses={names:?}"));
            }
            let mut metadata: Vec<_> = f.metadata.iter().collect();
            metadata.sort();
            if !metadata.is_empty() {
                parts.push(format!("metadata={metadata:?}"));
            }
            if f.created_after_ms != 0 {
                parts.push(format!("created_after_ms={}", f.created_after_ms));
            }
            if f.created_before_ms != 0 {
                parts.push(format!("created_before_ms={}", f.created_before_ms));
            }
            out.push_str(&parts.join(" "));
        }
        let _ = write!(out, "}} limit={}", self.limit);
        out
    }
}

impl AuditedReply for wire::BulkJobsResponse {
    fn outcome(&self) -> String {
        format!(
            " matched={} changed={} more={}",
            self.matched, self.changed, self.more
        )
    }
}

impl AuditedReply for wire::CancelResponse {}
impl AuditedReply for wire::Job {}
impl AuditedReply for wire::DeleteJobResponse {}
impl AuditedReply for wire::QueueStats {}
impl AuditedReply for wire::Schedule {}
impl AuditedReply for wire::DeleteScheduleResponse {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::Principal;

    fn ops() -> Caller {
        Caller::Token(Arc::new(
            Principal::new("ops", &["acme"], &["operate"]).unwrap(),
        ))
    }

    #[test]
    fn a_job_action_names_the_token_the_tenant_and_the_job() {
        let req = wire::CancelRequest {
            id: "j1".into(),
            tenant: "acme".into(),
        };
        assert_eq!(
            line(&ops(), Rpc::Cancel, &req, &wire::CancelResponse {}),
            r#"audit rpc=Cancel token="ops" tenant="acme" job_ids=["j1"]"#
        );
        assert_eq!(
            line(
                &Caller::Trusted,
                Rpc::Cancel,
                &req,
                &wire::CancelResponse {}
            ),
            r#"audit rpc=Cancel token="-" tenant="acme" job_ids=["j1"]"#
        );
    }

    #[test]
    fn a_bulk_action_names_its_filter_and_counts() {
        let req = wire::BulkJobsRequest {
            filter: Some(wire::ListJobsRequest {
                tenant: "acme".into(),
                queue: "mail".into(),
                statuses: vec![wire::JobStatus::Failed as i32],
                ..Default::default()
            }),
            limit: 10,
        };
        let reply = wire::BulkJobsResponse {
            matched: 3,
            changed: 2,
            more: false,
        };
        assert_eq!(
            line(&ops(), Rpc::RestartJobs, &req, &reply),
            r#"audit rpc=RestartJobs token="ops" tenant="acme" filter={queue="mail" statuses=["JOB_STATUS_FAILED"]} limit=10 matched=3 changed=2 more=false"#
        );
    }

    #[test]
    fn a_queue_action_names_the_queue() {
        let req = wire::QueueRef {
            tenant: "".into(),
            queue: "q".into(),
        };
        assert_eq!(
            line(&ops(), Rpc::PauseQueue, &req, &wire::QueueStats::default()),
            r#"audit rpc=PauseQueue token="ops" tenant="" queue="q""#
        );
    }
}
