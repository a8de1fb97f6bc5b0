-- STRICT tables so SQLite refuses values of the wrong type instead of storing them.
-- Booleans are INTEGER 0/1 (STRICT allows no BOOLEAN type name); diesel reads them as Bool.
-- SQLite compares TEXT byte-wise (BINARY) by default, which pagination and the path range need.

CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE accounts (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    -- No ON DELETE CASCADE: deleting an account that still has sub-accounts must fail.
    parent_id TEXT REFERENCES accounts (id),
    -- Materialized path "root/.../self/": descendants are one indexed range scan.
    path TEXT NOT NULL,
    api_key TEXT NOT NULL,
    superduper_admin INTEGER NOT NULL CHECK (superduper_admin IN (0, 1)),
    doc TEXT NOT NULL,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    revision_number INTEGER NOT NULL,
    revision_tag TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX accounts_api_key ON accounts (api_key);
CREATE UNIQUE INDEX accounts_path ON accounts (path);
CREATE INDEX accounts_parent_id ON accounts (parent_id, id);

CREATE TABLE webhooks (
    id TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    hook TEXT NOT NULL,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    include_subaccounts INTEGER NOT NULL CHECK (include_subaccounts IN (0, 1)),
    disabled_reason TEXT,
    doc TEXT NOT NULL,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    revision_number INTEGER NOT NULL,
    revision_tag TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX webhooks_account_id_id ON webhooks (account_id, id);

-- No foreign keys: a delivery may finish after its hook (or account) was deleted, and its
-- attempt record must still be written; delete_account removes them explicitly.
CREATE TABLE attempts (
    id TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    hook_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    doc TEXT NOT NULL
) STRICT;
CREATE INDEX attempts_account_id_created_id ON attempts (account_id, created, id);
CREATE INDEX attempts_hook_id_created_id ON attempts (hook_id, created, id);
CREATE INDEX attempts_created ON attempts (created);
