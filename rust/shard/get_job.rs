//! GetJob: a job as a client sees it, with its attempts on request.

use super::concurrency::Gate;
use super::{JobRef, Shard, Step};
use crate::error::{Error, Result};
use crate::keys;
use crate::proto::{records, wire};
use crate::record;

impl Shard {
    pub(super) async fn get_job(
        &self,
        st: &mut Step,
        job_ref: &JobRef,
        include_attempts: bool,
    ) -> Result<wire::Job> {
        let rec = self
            .load_job(st, &job_ref.tenant, &job_ref.id)
            .await?
            .ok_or(Error::JobNotFound)?;
        self.wire_job(st, rec, include_attempts).await
    }

    /// The client's view of a job record as this step sees it: its payload, its attempts on
    /// request, and the concurrency key it waits on (GetJob, WaitJob).
    pub(super) async fn wire_job(
        &self,
        st: &Step,
        rec: records::JobRecord,
        include_attempts: bool,
    ) -> Result<wire::Job> {
        let payload = st
            .txn
            .get(&self.db, &keys::payload(&rec.tenant, &rec.id))
            .await?
            .unwrap_or_default();
        let mut attempts = Vec::new();
        if include_attempts {
            for (_, v) in st
                .txn
                .scan_prefix(&self.db, &keys::attempts_prefix(&rec.tenant, &rec.id))
                .await?
            {
                attempts.push(record::decode::<records::AttemptRecord>(&v)?);
            }
        }
        let waiting_on = self
            .conc
            .waiting_on(&rec.tenant, &rec.id)
            .map(|(gate, key)| (gate, key.to_string()));
        let mut job = record::to_wire_job(rec, payload, attempts)?;
        match waiting_on {
            Some((Gate::Slots, key)) => job.waiting_on_keys = vec![key],
            Some((Gate::Tokens, key)) => job.waiting_on_rate_limit = key,
            None => {}
        }
        Ok(job)
    }
}
