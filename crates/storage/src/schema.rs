//! Diesel's view of the tables, written to match both migration sets (`migrations/postgres`,
//! `migrations/sqlite`). SQLite stores the `Bool` columns as INTEGER 0/1.

diesel::table! {
    /// System-wide key/value settings.
    settings (key) {
        /// The setting's name.
        key -> Text,
        /// The setting's value.
        value -> Text,
    }
}

diesel::table! {
    /// Accounts and their tree.
    accounts (id) {
        /// 32-hex id.
        id -> Text,
        /// Display name.
        name -> Text,
        /// Parent account; null for a root.
        parent_id -> Nullable<Text>,
        /// Materialized path: the ids from the root down to this account, each followed by `/`.
        path -> Text,
        /// The key exchanged for tokens.
        api_key -> Text,
        /// Whether the account's users are super-duper admins.
        superduper_admin -> Bool,
        /// Extra public fields as a JSON object.
        doc -> Text,
        /// Gregorian seconds.
        created -> BigInt,
        /// Gregorian seconds.
        modified -> BigInt,
        /// The `n` of the revision `n-tag`.
        revision_number -> BigInt,
        /// The random part of the revision.
        revision_tag -> Text,
    }
}

diesel::table! {
    /// Webhook documents.
    webhooks (id) {
        /// 32-hex id.
        id -> Text,
        /// Owning account.
        account_id -> Text,
        /// Hook type.
        hook -> Text,
        /// Whether deliveries happen.
        enabled -> Bool,
        /// Whether events of descendant accounts fire the hook.
        include_subaccounts -> Bool,
        /// Why the auto-disabler disabled it; null when enabled or disabled by hand.
        disabled_reason -> Nullable<Text>,
        /// Public fields as a JSON object.
        doc -> Text,
        /// Whether the hook has a signing secret (in `webhook_secrets`).
        signed -> Bool,
        /// Gregorian seconds.
        created -> BigInt,
        /// Gregorian seconds.
        modified -> BigInt,
        /// The `n` of the revision `n-tag`.
        revision_number -> BigInt,
        /// The random part of the revision.
        revision_tag -> Text,
    }
}

diesel::table! {
    /// Delivery attempt records.
    attempts (id) {
        /// 32-hex id.
        id -> Text,
        /// The hook owner's account.
        account_id -> Text,
        /// The hook.
        hook_id -> Text,
        /// Gregorian seconds.
        created -> BigInt,
        /// Public fields as a JSON object.
        doc -> Text,
        /// The delivery job attempted (JSON), for resends and replays; never public. Null on
        /// records written before it was kept.
        job -> Nullable<Text>,
        /// The document's `event_id`, for looking up one event's records; null when the
        /// document has no string `event_id`.
        event_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Where imported documents came from in Kazoo's CouchDB.
    couch_imports (kind, source) {
        /// What was imported (`webhook`).
        kind -> Text,
        /// The CouchDB document it came from (its id, and a suffix for a second hook of one).
        source -> Text,
        /// The id it has here.
        local_id -> Text,
        /// Its owner.
        account_id -> Text,
        /// The CouchDB revision imported last.
        revision -> Text,
    }
}

diesel::joinable!(webhooks -> accounts (account_id));
diesel::allow_tables_to_appear_in_same_query!(settings, accounts, webhooks, attempts, couch_imports);
