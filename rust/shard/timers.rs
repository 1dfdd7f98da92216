//! Timers: scheduled jobs coming due and leases running out, fired at the start of each step.

use super::{Shard, Step};

impl Shard {
    pub(super) async fn fire_timers(&mut self, st: &mut Step) {
        while let Some(entry) = self.scheduled.first_entry() {
            if entry.key().0 > st.now {
                break;
            }
            let w = entry.remove();
            self.ready.insert(w);
        }
        for (task_id, lease) in self.leases.take_expired(st.now) {
            self.expire_lease(st, &task_id, lease).await;
        }
    }
}
