//! Unique jobs (docs/api.md#unique-jobs): the UNIQUE family records which job holds a unique
//! key of a tenant. Checked and taken inside the enqueue's step, so the actor (the single
//! writer) and the step's `Txn` overlay make a check and a take atomic: two enqueues of one
//! key, in one batch or from many clients, store one job.

use super::{Shard, Step};
use crate::error::Result;
use crate::keys;
use crate::lifecycle::JobState;
use crate::proto::records;
use crate::record;

impl Shard {
    /// The id of the job that holds `unique_key` in `tenant` now, if any: one that is not
    /// terminal, or whose window (`unique_for_ms` from its creation) has not passed. A holder
    /// that was deleted (or whose id now names a later job) holds nothing.
    pub(super) async fn unique_holder(
        &self,
        st: &Step,
        tenant: &str,
        unique_key: &str,
    ) -> Result<Option<String>> {
        let Some(v) = st
            .txn
            .get(&self.db, &keys::unique(tenant, unique_key))
            .await?
        else {
            return Ok(None);
        };
        let holder: records::UniqueRecord = record::decode(&v)?;
        let Some(job) = self.load_job(st, tenant, &holder.job_id).await? else {
            return Ok(None);
        };
        if job.seq != holder.seq {
            return Ok(None);
        }
        let terminal = matches!(
            JobState::of_record(job.state)?,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        );
        let in_window = st.now < job.created_at_ms.saturating_add(job.unique_for_ms);
        Ok((!terminal || in_window).then_some(job.id))
    }

    /// A new job takes its unique key (in the enqueue's write).
    pub(super) fn take_unique(&self, st: &mut Step, job: &records::JobRecord) {
        let holder = records::UniqueRecord {
            job_id: job.id.clone(),
            seq: job.seq,
        };
        st.txn.put(
            keys::unique(&job.tenant, &job.unique_key),
            record::encode(&holder),
        );
    }

    /// A deleted job gives its unique key back: the UNIQUE entry goes if it still names this
    /// job (a later job may have taken the key since this one ended), so deleted jobs leave no
    /// entry behind.
    pub(super) async fn release_unique(
        &self,
        st: &mut Step,
        job: &records::JobRecord,
    ) -> Result<()> {
        let key = keys::unique(&job.tenant, &job.unique_key);
        let Some(v) = st.txn.get(&self.db, &key).await? else {
            return Ok(());
        };
        let holder: records::UniqueRecord = record::decode(&v)?;
        if holder.job_id == job.id && holder.seq == job.seq {
            st.txn.delete(key);
        }
        Ok(())
    }
}
