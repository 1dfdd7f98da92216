//! The store's layout: its shard count and tenant hash, fixed when the store is created and
//! recorded at `<root>/layout` (docs/cluster.md#shards).
//!
//! Why an object of its own and a create-only put: every broker that opens the store, on any
//! node and at the same moment, must agree on the shard count before it opens a shard. The
//! first writer wins (`PutMode::Create`: `If-None-Match: *` on S3, a no-clobber link on a local
//! directory); a loser reads what the winner wrote.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use crate::proto::records::StoreLayout;
use crate::record;
use crate::routing::TENANT_HASH;

/// Largest shard count a store may have.
pub const MAX_SHARDS: u32 = 1024;

/// The layout of the store at `root`: as recorded, or recorded now with `requested` shards
/// (default 1) if the store has none yet.
///
/// Errors: `InvalidArgument` on `shards` when `requested` differs from the recorded count
/// (naming both), or is 0 or over `MAX_SHARDS`; `StoreUnavailable` when the store fails.
pub async fn open_or_create(
    store: &dyn ObjectStore,
    root: &Path,
    requested: Option<u32>,
) -> Result<StoreLayout> {
    if let Some(n) = requested {
        if n == 0 || n > MAX_SHARDS {
            return Err(Error::invalid(
                "shards",
                format!("must be within 1..={MAX_SHARDS}, not {n}"),
            ));
        }
    }
    let path = root.clone().join("layout");
    let layout = match read(store, &path).await? {
        Some(layout) => layout,
        None => create(store, root, &path, requested.unwrap_or(1)).await?,
    };
    if let Some(n) = requested {
        if n != layout.shard_count {
            return Err(Error::invalid(
                "shards",
                format!(
                    "the store was created with {} shard(s); --shards {n} differs (a store's \
                     shard count is fixed)",
                    layout.shard_count
                ),
            ));
        }
    }
    if layout.tenant_hash != TENANT_HASH {
        return Err(Error::invalid(
            "store",
            format!(
                "the store maps tenants by {:?}; this build of silo maps them by {TENANT_HASH:?}",
                layout.tenant_hash
            ),
        ));
    }
    Ok(layout)
}

async fn read(store: &dyn ObjectStore, path: &Path) -> Result<Option<StoreLayout>> {
    match store.get(path).await {
        Ok(got) => {
            let bytes = got.bytes().await.map_err(unavailable)?;
            let layout: StoreLayout = record::decode(&bytes)?;
            if layout.shard_count == 0 {
                return Err(Error::Internal("the store's layout has no shards".into()));
            }
            Ok(Some(layout))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

/// Records the layout of a store that has none. A store written before layouts were recorded
/// holds shard 0 only: it gets a layout of one shard, and any other count is refused.
async fn create(
    store: &dyn ObjectStore,
    root: &Path,
    path: &Path,
    shard_count: u32,
) -> Result<StoreLayout> {
    let mut layout = StoreLayout {
        shard_count,
        tenant_hash: TENANT_HASH.to_string(),
    };
    // Listing first also fails cleanly on a store that cannot hold anything (no such bucket),
    // before the create-only put below.
    if has_shard_data(store, root).await? && shard_count != 1 {
        layout.shard_count = 1;
        tracing::warn!("the store predates recorded layouts: it has one shard");
    }
    let put = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let payload = PutPayload::from(record::encode(&layout));
    match store.put_opts(path, payload, put).await {
        Ok(_) => {
            tracing::info!(shards = layout.shard_count, "store layout recorded");
            Ok(layout)
        }
        // Another broker created the store first: its layout is the store's.
        Err(object_store::Error::AlreadyExists { .. }) => read(store, path)
            .await?
            .ok_or_else(|| Error::StoreUnavailable("the store's layout vanished".into())),
        Err(e) => Err(unavailable(e)),
    }
}

async fn has_shard_data(store: &dyn ObjectStore, root: &Path) -> Result<bool> {
    use futures::StreamExt;
    let prefix = root.clone().join("shards");
    let mut listing = store.list(Some(&prefix));
    match listing.next().await {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(unavailable(e)),
    }
}

fn unavailable(e: object_store::Error) -> Error {
    Error::StoreUnavailable(format!("reading the store's layout: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn the_first_count_is_kept_and_a_different_one_refused() {
        let store = Arc::new(InMemory::new());
        let root = Path::from("r");
        let l = open_or_create(store.as_ref(), &root, Some(12))
            .await
            .unwrap();
        assert_eq!(l.shard_count, 12);
        assert_eq!(
            open_or_create(store.as_ref(), &root, None)
                .await
                .unwrap()
                .shard_count,
            12,
            "no --shards: the store's count"
        );
        let err = open_or_create(store.as_ref(), &root, Some(4))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("shards:") && text.contains("12") && text.contains("4"),
            "{text}"
        );
        assert!(open_or_create(store.as_ref(), &root, Some(0))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_store_without_a_layout_but_with_shard_data_has_one_shard() {
        let store = Arc::new(InMemory::new());
        let root = Path::from("");
        store
            .put(
                &Path::from("shards/0/manifest/x"),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        let err = open_or_create(store.as_ref(), &root, Some(3))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1 shard"), "{err}");
        let l = open_or_create(store.as_ref(), &root, None).await.unwrap();
        assert_eq!(l.shard_count, 1);
    }
}
