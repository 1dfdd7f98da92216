//! Which shard serves a call: a tenant's shard is `xxh3_64(tenant) mod shard_count`, and a task
//! id names the shard that issued it, so no call needs a lookup to find its shard
//! (docs/cluster.md#shards).

use xxhash_rust::xxh3::xxh3_64;

/// How a tenant maps to its shard, as the store's layout records it (a store made by another
/// mapping is refused at open).
pub const TENANT_HASH: &str = "xxh3_64(tenant) mod shard_count";
/// The name of the tenant hash, as `GetCluster` reports it (`Cluster.hash`): a tenant is on
/// shard `xxh3_64(tenant) mod shard_count`. Clients that route by tenant compute the same
/// function (python: `xxhash.xxh3_64_intdigest`).
pub const TENANT_HASH_NAME: &str = "xxh3_64";

/// The shard of a tenant (the UTF-8 bytes of its name; `""` is the default tenant).
pub fn shard_of_tenant(tenant: &str, shard_count: u32) -> u32 {
    if shard_count <= 1 {
        return 0;
    }
    (xxh3_64(tenant.as_bytes()) % u64::from(shard_count)) as u32
}

/// A new task id issued by `shard`: `<shard>-<uuid v7, 32 hex digits>`. Unique forever (the
/// UUID is) and sortable by issue time within a shard.
pub fn new_task_id(shard: u32) -> String {
    format!("{shard}-{}", uuid::Uuid::now_v7().simple())
}

/// The shard that issued a task id; None when the id names no shard of this store (a task
/// never issued: the caller answers NOT_FOUND). With one shard every id is shard 0's, so
/// stores written before task ids named their shard keep working.
pub fn shard_of_task(task_id: &str, shard_count: u32) -> Option<u32> {
    if shard_count <= 1 {
        return Some(0);
    }
    let (prefix, _) = task_id.split_once('-')?;
    if prefix.is_empty() || prefix.len() > 10 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shard: u32 = prefix.parse().ok()?;
    (shard < shard_count).then_some(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_takes_everything() {
        assert_eq!(shard_of_tenant("anything", 1), 0);
        assert_eq!(shard_of_task("not-even-an-id", 1), Some(0));
    }

    #[test]
    fn tenants_hash_stably_and_spread() {
        // Fixed values: the hash is a contract shared with clients (docs/cluster.md#shards).
        assert_eq!(xxh3_64(b""), 0x2d06800538d394c2);
        assert_eq!(shard_of_tenant("", 12), (0x2d06800538d394c2u64 % 12) as u32);
        let mut seen = [0u32; 12];
        for i in 0..1200 {
            seen[shard_of_tenant(&format!("tenant-{i}"), 12) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "uneven spread: {seen:?}");
    }

    #[test]
    fn task_ids_name_their_shard() {
        for shard in [0, 3, 11] {
            let id = new_task_id(shard);
            assert_eq!(shard_of_task(&id, 12), Some(shard));
        }
        assert_eq!(shard_of_task(&new_task_id(12), 12), None, "no such shard");
        assert_eq!(shard_of_task("0190b2c4d5e6", 12), None, "no prefix");
        assert_eq!(shard_of_task("-abc", 12), None);
        assert_eq!(shard_of_task("x-abc", 12), None);
        assert_eq!(shard_of_task("99999999999-abc", 12), None);
    }
}
