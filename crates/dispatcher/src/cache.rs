//! Values the dispatcher reads from the store (signing keys, failure limits), kept so that an
//! outage of the database does not stop deliveries: a value is read again once it is older than
//! its freshness, and when that read fails the last value read stays in use, for a bounded time.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use webhooks_storage::StorageError;

/// Entries per cache: plenty for the hooks and accounts active within a cache lifetime.
const CAPACITY: u64 = 100_000;

/// A cache refreshed from the store, falling back to the last value read.
pub(crate) struct Refreshing<K, V> {
    /// Values read within their freshness. Concurrent reads of one key share one store read.
    fresh: moka::future::Cache<K, V>,
    /// The last value read of each key, kept longer: what is used while a new read fails.
    last: moka::sync::Cache<K, V>,
}

impl<K, V> Refreshing<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache whose values are read again after `fresh_for`, and whose last values stay usable
    /// for `keep_for` after they were read.
    pub(crate) fn new(fresh_for: Duration, keep_for: Duration) -> Self {
        Self {
            fresh: moka::future::Cache::builder().max_capacity(CAPACITY).time_to_live(fresh_for).build(),
            last: moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_live(keep_for.max(fresh_for)).build(),
        }
    }

    /// The value of `key`: fresh, else read with `read`; when the read fails, the last value
    /// read (if it is still kept), else the error.
    pub(crate) async fn get(
        &self,
        key: &K,
        read: impl Future<Output = Result<V, StorageError>>,
    ) -> Result<V, Arc<StorageError>> {
        let read_and_keep = async {
            let value = read.await?;
            self.last.insert(key.clone(), value.clone());
            Ok(value)
        };
        match self.fresh.try_get_with_by_ref(key, read_and_keep).await {
            Ok(value) => Ok(value),
            Err(error) => match self.last.get(key) {
                Some(value) => {
                    tracing::debug!(error = %error, "store unreadable; the last value read is used");
                    Ok(value)
                }
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_stale_value_is_read_again_and_kept_when_the_read_fails() {
        let cache: Refreshing<&str, u32> = Refreshing::new(Duration::from_millis(20), Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        // Counts the reads the cache makes, not the futures it is offered.
        let read = |value: Result<u32, StorageError>| {
            let reads = &reads;
            async move {
                reads.fetch_add(1, Ordering::Relaxed);
                value
            }
        };
        assert_eq!(cache.get(&"k", read(Ok(1))).await.ok(), Some(1));
        assert_eq!(cache.get(&"k", read(Ok(2))).await.ok(), Some(1), "fresh: not read again");
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.get(&"k", read(Err(StorageError::Unavailable))).await.ok(), Some(1), "the last value read");
        assert_eq!(cache.get(&"k", read(Ok(3))).await.ok(), Some(3), "read again once the store answers");
        assert!(cache.get(&"other", read(Err(StorageError::Unavailable))).await.is_err(), "nothing to fall back on");
        assert_eq!(reads.load(Ordering::Relaxed), 4);
    }
}
