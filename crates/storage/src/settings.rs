//! System settings: key/value text shared by every replica.

use diesel::prelude::*;

use crate::Store;
use crate::connection::AnyConnection;
use crate::error::Result;
use crate::schema::settings;

/// A settings row to insert.
#[derive(Insertable)]
#[diesel(table_name = settings)]
struct SettingRow<'a> {
    key: &'a str,
    value: &'a str,
}

/// The value of `key`, if set.
pub(crate) fn load(connection: &mut AnyConnection, key: &str) -> Result<Option<String>> {
    Ok(settings::table.filter(settings::key.eq(key)).select(settings::value).first::<String>(connection).optional()?)
}

/// Stores `value` under `key` unless the key exists; never fails on an existing key.
fn insert_if_absent(connection: &mut AnyConnection, key: &str, value: &str) -> Result<()> {
    let row = SettingRow { key, value };
    // ON CONFLICT is outside the subset diesel's multi-backend offers, so it is spelled per backend.
    match connection {
        AnyConnection::Postgres(postgres) => {
            diesel::insert_into(settings::table).values(&row).on_conflict_do_nothing().execute(postgres)?
        }
        AnyConnection::Sqlite(sqlite) => {
            diesel::insert_into(settings::table).values(&row).on_conflict_do_nothing().execute(sqlite)?
        }
    };
    Ok(())
}

/// Sets `key` to `value`, replacing any value. Call inside a transaction.
pub(crate) fn replace(connection: &mut AnyConnection, key: &str, value: &str) -> Result<()> {
    diesel::delete(settings::table.filter(settings::key.eq(key))).execute(connection)?;
    diesel::insert_into(settings::table).values(&SettingRow { key, value }).execute(connection)?;
    Ok(())
}

impl Store {
    /// The value of the system setting `key`, if set.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.run(move |connection| load(connection, &key)).await
    }

    /// Stores `value` under `key` unless the key exists, and returns the value stored now: the
    /// existing one wins. Safe when several replicas race to set the same key.
    pub async fn insert_setting_if_absent(&self, key: &str, value: &str) -> Result<String> {
        let key = key.to_owned();
        let value = value.to_owned();
        self.run(move |connection| {
            insert_if_absent(connection, &key, &value)?;
            // Outside a transaction each statement sees the latest commit, so this reads either
            // our row or the one that beat it.
            Ok(load(connection, &key)?.unwrap_or(value))
        })
        .await
    }
}
