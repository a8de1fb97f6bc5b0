//! Finding the account of a call by its number, as Kazoo does, when the call's first event names
//! no account (the carrier leg of an inbound call): the dialled number, in E.164, is looked up in
//! Kazoo's number documents in CouchDB (`kazoo.couch_url`). Answers are kept for a while, found or
//! not, and forgotten on Kazoo's notice of a change to the number's document.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache;
use webhooks_model::couch::{encode_segment, normalize_e164, number_owner, numbers_db};
use webhooks_model::ids::AccountId;
use webhooks_storage::couch::CouchDb;

/// Numbers whose owner is kept at most.
const CAPACITY: u64 = 100_000;
/// How long an owner (or its absence) is kept without a notice.
const KEPT: Duration = Duration::from_secs(600);
/// After CouchDB failed to answer, how long calls are not looked up (and skipped), so that an
/// outage does not hold every batch of events up by a timeout.
const OUTAGE_HOLD: Duration = Duration::from_secs(5);

/// The owners of numbers, from Kazoo's CouchDB.
#[derive(Debug)]
pub(crate) struct NumberOwners {
    couch: CouchDb,
    owners: Cache<String, Option<AccountId>>,
    /// Until when CouchDB is not asked: it failed just before.
    outage_until: Mutex<Option<Instant>>,
}

impl NumberOwners {
    pub(crate) fn new(couch: CouchDb) -> Self {
        let owners = Cache::builder().max_capacity(CAPACITY).time_to_live(KEPT).build();
        Self { couch, owners, outage_until: Mutex::new(None) }
    }

    /// The account `dialled` (as the call names it) belongs to; `None` when no account has it
    /// in service, or CouchDB cannot be asked (not kept: the next call asks again).
    pub(crate) async fn owner(&self, dialled: &str) -> Option<AccountId> {
        let number = normalize_e164(dialled);
        if let Some(owner) = self.owners.get(&number).await {
            return owner;
        }
        if self.outage().is_some_and(|until| Instant::now() < until) {
            return None;
        }
        match self.couch.document(&numbers_db(&number), &encode_segment(&number)).await {
            Ok(doc) => {
                let owner = doc.as_ref().and_then(number_owner);
                self.owners.insert(number, owner.clone()).await;
                owner
            }
            Err(error) => {
                tracing::warn!(%error, number, "the owner of a number cannot be read from CouchDB; not asked for a while");
                *self.outage_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + OUTAGE_HOLD);
                None
            }
        }
    }

    fn outage(&self) -> Option<Instant> {
        *self.outage_until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets what is kept of `number` (its document changed).
    pub(crate) async fn forget(&self, number: &str) {
        self.owners.invalidate(number).await;
    }
}
