//! What each request names for the tenant check (`Caller::check`): one impl per request type
//! of the RPC table, so a new request type served by `call_raw` does not compile without one.

use crate::proto::{admin, wire};

/// The tenant a decoded request acts on, as far as the check before the call can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The call acts on this tenant alone: it runs only if the caller may act on it.
    Tenant(&'a str),
    /// The tenants are those of entries, tasks or ready jobs: the call carries the caller's
    /// `TenantScope` down and each is checked where it is resolved.
    Entries,
    /// The call acts on no tenant (process-wide calls; their role is the check).
    None,
}

/// A request whose tenant the check before the call reads.
pub trait Scoped {
    fn scope(&self) -> Scope<'_>;
}

macro_rules! tenant_field {
    ($($ty:ty),* $(,)?) => {
        $(impl Scoped for $ty {
            fn scope(&self) -> Scope<'_> {
                Scope::Tenant(&self.tenant)
            }
        })*
    };
}

macro_rules! scoped_as {
    ($scope:expr => $($ty:ty),* $(,)?) => {
        $(impl Scoped for $ty {
            fn scope(&self) -> Scope<'_> {
                $scope
            }
        })*
    };
}

tenant_field!(
    wire::EnqueueRequest,
    wire::CancelRequest,
    wire::GetJobRequest,
    wire::ListJobsRequest,
    wire::RestartJobRequest,
    wire::ExpediteJobRequest,
    wire::DeleteJobRequest,
    wire::WaitJobRequest,
    wire::ListQueuesRequest,
    wire::QueueRef,
    wire::ScheduleRef,
    wire::ListSchedulesRequest,
    admin::GetConcurrencyKeyRequest,
    admin::GetRateLimitRequest,
);

// A schedule acts on its tenant; its job template may only name the same one (validation).
tenant_field!(wire::Schedule);

scoped_as!(Scope::Entries =>
    wire::EnqueueBatchRequest,
    wire::LeaseTasksRequest,
    wire::HeartbeatTaskRequest,
    wire::ReportTaskOutcomeRequest,
    wire::ReportTaskOutcomesRequest,
);

scoped_as!(Scope::None =>
    wire::GetClusterRequest,
    admin::GetStatsRequest,
    admin::SetFaultsRequest,
);

impl Scoped for wire::BulkJobsRequest {
    /// The filter's tenant (an absent filter is the default tenant's, as the call reads it).
    fn scope(&self) -> Scope<'_> {
        Scope::Tenant(self.filter.as_ref().map_or("", |f| f.tenant.as_str()))
    }
}
