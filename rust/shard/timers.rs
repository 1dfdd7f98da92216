//! Timers: scheduled jobs coming due (moved to READY and admitted to memory), leases running
//! out, and flow control's (schedule ticks, expiries, rate-limit tokens), fired at the start
//! and end of each step.

use super::{Shard, Step};
use crate::error::Result;

impl Shard {
    pub(super) async fn fire_timers(&mut self, st: &mut Step) {
        // Ticks first: a tick's job due now is promoted below, in the same step.
        if let Err(e) = self.fire_schedules(st).await {
            tracing::error!("firing schedules failed: {e}");
            self.health.fail(e.to_string());
        }
        if let Err(e) = self.promote_due(st).await {
            // Memory may now lack entries the store holds: rebuild before serving again.
            tracing::error!("promoting due jobs failed: {e}");
            self.health.fail(e.to_string());
        }
        for (_, lease) in self.running.take_expired(st.now) {
            self.expire_lease(st, lease);
        }
        if let Err(e) = self.fire_expiries(st).await {
            tracing::error!("expiring jobs failed: {e}");
            self.health.fail(e.to_string());
        }
        self.fire_rate_limits(st);
    }

    async fn promote_due(&mut self, st: &mut Step) -> Result<()> {
        let due = self.take_due_timers(st).await?;
        if due.is_empty() {
            return Ok(());
        }
        self.promote(st, due).await
    }
}
