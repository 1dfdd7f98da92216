//! Who may call what (docs/security.md): the role each RPC needs, a token's tenants, and the
//! one check a call passes before it is served.
//!
//! The gRPC server verifies the bearer token (python/silo/server/auth.py) and hands the core the
//! token's `Principal`; `Broker::call_raw` (rust/rpc.rs) then asks `Caller::permit` for the
//! RPC's role before decoding, and `Caller::check` for the tenant the decoded request names
//! (`Scoped`, scope.rs) before the broker method runs. Calls that name no tenant up front
//! (batches, tasks, leases) carry the caller's `TenantScope` down: a batch entry of another
//! tenant fails alone with PERMISSION_DENIED, a task of another tenant is NOT_FOUND, and a lease
//! takes only the scope's tenants' jobs.

mod scope;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

pub use scope::{Scope, Scoped};

use crate::error::{Error, Result};
use crate::rpc::Rpc;

/// A role a token may hold (docs/security.md#roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Enqueue, EnqueueBatch, EnqueueStream, Cancel, GetJob, WaitJob.
    Produce,
    /// LeaseTasks, HeartbeatTask, ReportTaskOutcome(s), WorkerSession.
    Work,
    /// Every call of `silo.v1.Silo` for its tenants (produce and work included).
    Operate,
    /// `silo.admin.v1.Admin`, and every other role.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Produce, Role::Work, Role::Operate, Role::Admin];

    /// The role's name in the auth file.
    pub fn name(self) -> &'static str {
        match self {
            Role::Produce => "produce",
            Role::Work => "work",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether holding this role grants `need`.
    fn grants(self, need: Need) -> bool {
        match (self, need) {
            (_, Need::AnyToken) => true,
            (Role::Admin, _) => true,
            (Role::Operate, Need::Role(r)) => r != Role::Admin,
            (held, Need::Role(r)) => held == r,
        }
    }
}

/// What a caller needs to make an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A token holding a role that grants this one.
    Role(Role),
    /// Any valid token, whatever its roles (GetCluster).
    AnyToken,
}

/// The role table: what each RPC needs, in one match with no wildcard, so that an RPC added to
/// `Rpc` without a row does not compile (docs/security.md#roles).
pub fn need(rpc: Rpc) -> Need {
    use Role::*;
    match rpc {
        Rpc::Enqueue
        | Rpc::EnqueueBatch
        | Rpc::EnqueueStream
        | Rpc::Cancel
        | Rpc::GetJob
        | Rpc::WaitJob => Need::Role(Produce),
        Rpc::LeaseTasks
        | Rpc::HeartbeatTask
        | Rpc::ReportTaskOutcome
        | Rpc::ReportTaskOutcomes
        | Rpc::WorkerSession => Need::Role(Work),
        Rpc::ListJobs
        | Rpc::RestartJob
        | Rpc::ExpediteJob
        | Rpc::DeleteJob
        | Rpc::ListQueues
        | Rpc::CancelJobs
        | Rpc::RestartJobs
        | Rpc::DeleteJobs
        | Rpc::PauseQueue
        | Rpc::ResumeQueue
        | Rpc::PutSchedule
        | Rpc::DeleteSchedule
        | Rpc::GetSchedule
        | Rpc::ListSchedules => Need::Role(Operate),
        Rpc::GetStats | Rpc::SetFaults | Rpc::GetConcurrencyKey | Rpc::GetRateLimit => {
            Need::Role(Admin)
        }
        Rpc::GetCluster => Need::AnyToken,
    }
}

/// A token's tenant patterns: exact names, `prefix*` patterns, `*` for every tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenants {
    all: bool,
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl Tenants {
    /// Reads patterns; a bad one is `InvalidArgument` naming `tenants[i]`. A pattern is a tenant
    /// name (which may be `""`, the default tenant), or a prefix followed by one `*` at its end.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Tenants> {
        let mut t = Tenants::default();
        for (i, p) in patterns.iter().enumerate() {
            let p = p.as_ref();
            let field = format!("tenants[{i}]");
            let (body, wildcard) = match p.strip_suffix('*') {
                Some(prefix) => (prefix, true),
                None => (p, false),
            };
            if body.contains('*') {
                return Err(Error::invalid(
                    field,
                    "`*` may only end a pattern (`prefix*`)",
                ));
            }
            if body.chars().any(char::is_control) || body.chars().count() > 127 {
                return Err(Error::invalid(
                    field,
                    "must be a tenant name (at most 127 characters, no control characters)",
                ));
            }
            match (wildcard, body.is_empty()) {
                (true, true) => t.all = true,
                (true, false) => t.prefixes.push(body.to_string()),
                (false, _) => {
                    t.exact.insert(body.to_string());
                }
            }
        }
        Ok(t)
    }

    /// Every tenant?
    pub fn is_all(&self) -> bool {
        self.all
    }

    pub fn allows(&self, tenant: &str) -> bool {
        self.all
            || self.exact.contains(tenant)
            || self.prefixes.iter().any(|p| tenant.starts_with(p.as_str()))
    }

    /// The exact names, when the patterns are only exact names (no prefix, not `*`): a lease
    /// can then look its tenants up instead of scanning the others (rust/shard/ready.rs).
    pub fn exact_only(&self) -> Option<&HashSet<String>> {
        (!self.all && self.prefixes.is_empty()).then_some(&self.exact)
    }
}

/// The tenants a call may touch: every tenant (a trusted caller, or a token with `*`), or a
/// token's patterns. Cheap to clone; carried by lease, heartbeat and report parameters down to
/// the shard actor.
#[derive(Debug, Clone, Default)]
pub struct TenantScope(Option<Arc<Tenants>>);

impl TenantScope {
    /// Every tenant.
    pub fn all() -> TenantScope {
        TenantScope(None)
    }

    pub fn of(tenants: Tenants) -> TenantScope {
        if tenants.is_all() {
            TenantScope(None)
        } else {
            TenantScope(Some(Arc::new(tenants)))
        }
    }

    /// The patterns, or None for every tenant.
    pub fn tenants(&self) -> Option<&Tenants> {
        self.0.as_deref()
    }

    pub fn allows(&self, tenant: &str) -> bool {
        self.0.as_ref().is_none_or(|t| t.allows(tenant))
    }
}

/// A verified token: its name (for logs and the audit log), tenants and roles. Built once per
/// entry of the auth file, shared by every call made with the token.
#[derive(Debug)]
pub struct Principal {
    name: String,
    tenants: TenantScope,
    patterns: Vec<String>,
    roles: Vec<Role>,
}

impl Principal {
    /// A principal from an auth-file entry. `InvalidArgument` names `tenants[i]` or
    /// `roles[i]` for a bad pattern or an unknown role.
    pub fn new<S: AsRef<str>, R: AsRef<str>>(
        name: &str,
        tenants: &[S],
        roles: &[R],
    ) -> Result<Principal> {
        let mut held = Vec::new();
        for (i, r) in roles.iter().enumerate() {
            let role = Role::parse(r.as_ref()).ok_or_else(|| {
                Error::invalid(
                    format!("roles[{i}]"),
                    format!(
                        "unknown role {:?} (expected produce, work, operate or admin)",
                        r.as_ref()
                    ),
                )
            })?;
            if !held.contains(&role) {
                held.push(role);
            }
        }
        held.sort();
        Ok(Principal {
            name: name.to_string(),
            tenants: TenantScope::of(Tenants::parse(tenants)?),
            patterns: tenants.iter().map(|t| t.as_ref().to_string()).collect(),
            roles: held,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The tenant patterns as the file wrote them.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn scope(&self) -> &TenantScope {
        &self.tenants
    }

    /// Whether the token may make `rpc` (its roles only; tenants are checked apart).
    pub fn may(&self, rpc: Rpc) -> bool {
        let need = need(rpc);
        need == Need::AnyToken || self.roles.iter().any(|r| r.grants(need))
    }
}

/// Who makes a call: the process itself (the embedded `silo.Broker`, a server without an auth
/// file: no checks), or a verified token.
#[derive(Debug, Clone, Default)]
pub enum Caller {
    #[default]
    Trusted,
    Token(Arc<Principal>),
}

impl Caller {
    /// PERMISSION_DENIED unless the caller may make `rpc` (its roles).
    pub fn permit(&self, rpc: Rpc) -> Result<()> {
        match self {
            Caller::Trusted => Ok(()),
            Caller::Token(p) if p.may(rpc) => Ok(()),
            Caller::Token(p) => Err(Error::PermissionDenied(format!(
                "token {:?} may not call {}: it needs the {} role",
                p.name,
                rpc.name(),
                match need(rpc) {
                    Need::Role(r) => r.name(),
                    Need::AnyToken => "any",
                }
            ))),
        }
    }

    /// PERMISSION_DENIED unless the caller may act on `tenant`. The answer is the same whether
    /// or not anything of that tenant exists (no existence oracle).
    pub fn check_tenant(&self, tenant: &str) -> Result<()> {
        match self {
            Caller::Token(p) if !p.tenants.allows(tenant) => Err(Error::PermissionDenied(format!(
                "token {:?} may not act on tenant {tenant:?}",
                p.name
            ))),
            _ => Ok(()),
        }
    }

    /// Checks what a decoded request names (`Scoped`): its tenant, if it names one up front.
    pub fn check(&self, req: &impl Scoped) -> Result<()> {
        match req.scope() {
            Scope::Tenant(tenant) => self.check_tenant(tenant),
            Scope::Entries | Scope::None => Ok(()),
        }
    }

    /// The tenants the caller may touch, for checks made further down (batch entries, tasks,
    /// leases).
    pub fn scope(&self) -> TenantScope {
        match self {
            Caller::Trusted => TenantScope::all(),
            Caller::Token(p) => p.tenants.clone(),
        }
    }

    /// The token's name for the audit log; None for a trusted caller.
    pub fn name(&self) -> Option<&str> {
        match self {
            Caller::Trusted => None,
            Caller::Token(p) => Some(&p.name),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
