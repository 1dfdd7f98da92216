//! Rate limits (docs/architecture.md#rate-limits): the durable token bucket of each (tenant,
//! key) in the RATE family, and what the shard does with it. The accounting of tokens against
//! waiting and admitted jobs is the admission table's (concurrency.rs); the arithmetic of a
//! bucket is bucket.rs.
//!
//! - An enqueue that names a key sets its values (the last one wins), durably, in its write.
//! - A bucket is read into memory when a job naming the key comes due (`ensure_buckets`) and
//!   dropped when no job waits for or holds one of its tokens.
//! - Tokens are taken at lease, and the bucket written in the lease's write, so a restart
//!   neither refills a bucket nor forgets a token taken.

use super::bucket::Bucket;
use super::concurrency::TokenTaken;
use super::txn::Txn;
use super::{Shard, Step};
use crate::error::Result;
use crate::keys;
use crate::proto::{admin, records};
use crate::record;

impl Shard {
    /// The stored bucket of a key, as this step left it.
    async fn stored_bucket(&self, txn: &Txn, tenant: &str, key: &str) -> Result<Option<Bucket>> {
        let Some(v) = txn.get(&self.db, &keys::rate(tenant, key)).await? else {
            return Ok(None);
        };
        let r: records::RateBucketRecord = record::decode(&v)?;
        let bucket = Bucket::from_record(&r);
        if bucket.is_none() {
            tracing::error!(tenant, key, "a malformed rate-limit bucket: treated as new");
        }
        Ok(bucket)
    }

    fn write_bucket(&self, st: &mut Step, tenant: &str, key: &str, bucket: &Bucket) {
        st.txn
            .put(keys::rate(tenant, key), record::encode(&bucket.to_record()));
    }

    /// Buckets that gave a token to a lease: written in the lease's write.
    pub(super) fn write_buckets(&self, st: &mut Step, taken: Vec<TokenTaken>) {
        for t in taken {
            self.write_bucket(st, &t.tenant, &t.key, &t.bucket);
        }
    }

    /// An enqueue names a rate-limit key: a key seen for the first time gets a full bucket;
    /// new values replace the old ones (tokens kept, capped at a lower limit). Written in the
    /// enqueue's write; a key in use changes in memory too (a raised limit may admit waiters).
    pub(super) async fn set_rate(
        &mut self,
        st: &mut Step,
        tenant: &str,
        limit: &records::RateLimitRecord,
    ) -> Result<()> {
        let (key, now) = (&limit.key, st.now);
        if let Some(mut bucket) = self.conc.bucket(tenant, key) {
            if bucket.reconfigure(limit.limit, limit.period_ms, now) {
                self.write_bucket(st, tenant, key, &bucket);
                let admitted = self.conc.set_bucket(tenant, key, bucket);
                self.ready_all(admitted);
            }
            return Ok(());
        }
        let bucket = match self.stored_bucket(&st.txn, tenant, key).await? {
            Some(mut stored) => {
                if !stored.reconfigure(limit.limit, limit.period_ms, now) {
                    return Ok(());
                }
                stored
            }
            None => Bucket::full(limit.limit, limit.period_ms, now),
        };
        self.write_bucket(st, tenant, key, &bucket);
        Ok(())
    }

    /// Loads into the admission table the bucket of every key it does not hold yet.
    pub(super) async fn ensure_buckets(
        &mut self,
        txn: &Txn,
        tenant: &str,
        keys: &[String],
    ) -> Result<()> {
        for key in keys {
            if self.conc.knows_rate(tenant, key) {
                continue;
            }
            let bucket = match self.stored_bucket(txn, tenant, key).await? {
                Some(b) => b,
                None => {
                    // Every enqueue that names a key writes its bucket: this is a bug.
                    tracing::error!(
                        tenant,
                        key,
                        "no stored bucket for a rate-limit key; using 1/s"
                    );
                    Bucket::full(1, 1000, self.clock.now_ms())
                }
            };
            let admitted = self.conc.set_bucket(tenant, key, bucket);
            self.ready_all(admitted);
        }
        Ok(())
    }

    /// Rate-limit keys whose next token came hand it to their best waiters.
    pub(super) fn fire_rate_limits(&mut self, st: &Step) {
        let admitted = self.conc.fire_tokens(st.now);
        self.ready_all(admitted);
    }

    /// Admin.GetRateLimit: one key's bucket (from memory when in use, else as stored) and
    /// waiters.
    pub(super) async fn get_rate_limit(
        &self,
        st: &Step,
        tenant: &str,
        key: &str,
    ) -> Result<admin::RateLimitState> {
        let (bucket, reserved, waiters, next) = self.conc.describe_rate(tenant, key);
        let bucket = match bucket {
            Some(b) => Some(b),
            None => self.stored_bucket(&st.txn, tenant, key).await?,
        };
        Ok(admin::RateLimitState {
            limit: bucket.map_or(0, |b| b.limit),
            period_ms: bucket.map_or(0, |b| b.period_ms),
            tokens: bucket.map_or(0.0, |b| b.tokens_exact(st.now)),
            reserved,
            waiters,
            next_token_at_ms: next.unwrap_or(0),
        })
    }
}
