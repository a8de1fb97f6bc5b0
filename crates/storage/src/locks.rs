//! Locks that hold across every process sharing the database.

use diesel::RunQueryDsl;
use diesel::r2d2::PooledConnection;
use diesel::sql_types::BigInt;
use webhooks_model::ids::AccountId;

use crate::Store;
use crate::connection::{AnyConnection, Manager};
use crate::error::{Result, StorageError};

/// The high half of the advisory lock keys on copying one account ("whac" in ASCII); the low
/// half comes from the account id. Two accounts may share a key (one in 2^32): they then only
/// wait for each other.
const ACCOUNT_COPY_LOCK_SPACE: i64 = 0x7768_6163 << 32;

/// The lock on copying one account from another system of record, held until dropped: see
/// [`Store::lock_account_copy`].
#[must_use = "the lock is released when dropped"]
pub struct AccountCopyLock {
    /// The session holding the lock, on PostgreSQL; `None` on SQLite.
    session: Option<PooledConnection<Manager>>,
    key: i64,
}

impl Store {
    /// Waits for, then takes, the lock on copying account `id`: a process reading an account
    /// from its system of record and writing it here holds it from the read to the write, so
    /// that two replicas' copies of one account (a reconciliation's and a notice's, say) cannot
    /// interleave and leave the older read written last. On PostgreSQL a session advisory lock,
    /// on a pooled connection kept until the lock is dropped; on SQLite nothing, since one
    /// process alone uses the file and orders its own copies.
    pub async fn lock_account_copy(&self, id: &AccountId) -> Result<AccountCopyLock> {
        let key = account_copy_key(id);
        if self.backend() == crate::Backend::Sqlite {
            return Ok(AccountCopyLock { session: None, key });
        }
        if self.outage.holds() {
            return Err(StorageError::Unavailable);
        }
        let pool = self.pool.clone();
        let session = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut session = pool.get()?;
            if let AnyConnection::Postgres(postgres) = &mut session.connection {
                let locked = diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(key).execute(postgres);
                if let Err(error) = locked.map_err(StorageError::from) {
                    session.dead = error.is_unavailable();
                    return Err(error);
                }
            }
            Ok(session)
        })
        .await??;
        Ok(AccountCopyLock { session: Some(session), key })
    }
}

impl Drop for AccountCopyLock {
    fn drop(&mut self) {
        let Some(mut session) = self.session.take() else { return };
        let key = self.key;
        let mut unlock = move || {
            if let AnyConnection::Postgres(postgres) = &mut session.connection
                && let Err(error) =
                    diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(key).execute(postgres)
            {
                tracing::debug!(%error, "account copy lock not released; its session is closed instead");
                // The server releases a session's locks when it ends.
                session.dead = true;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(unlock)),
            Err(_) => unlock(),
        }
    }
}

/// The advisory lock key of copying account `id`: its first 32 bits under the lock space.
fn account_copy_key(id: &AccountId) -> i64 {
    // An account id is 32 hexadecimal digits, so its first eight always parse.
    let low = id.as_str().get(..8).and_then(|digits| u32::from_str_radix(digits, 16).ok()).unwrap_or_default();
    ACCOUNT_COPY_LOCK_SPACE | i64::from(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_lock_space_and_the_ids_first_digits() {
        let id: AccountId = "ffffffff00000000000000000000000a".parse().expect("an id");
        assert_eq!(account_copy_key(&id), 0x7768_6163_ffff_ffff);
        let id: AccountId = "0000000100000000000000000000000a".parse().expect("an id");
        assert_eq!(account_copy_key(&id), 0x7768_6163_0000_0001);
    }
}
