-- Identifiers, keys and the account path use the "C" collation: pagination compares ids and
-- descendant lookups take a byte-wise range of paths, which must not depend on the server locale.

CREATE TABLE settings (
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    -- No ON DELETE CASCADE: deleting an account that still has sub-accounts must fail.
    parent_id TEXT COLLATE "C" REFERENCES accounts (id),
    -- Materialized path "root/.../self/": descendants are one indexed range scan.
    path TEXT COLLATE "C" NOT NULL,
    api_key TEXT COLLATE "C" NOT NULL,
    superduper_admin BOOLEAN NOT NULL,
    doc TEXT NOT NULL,
    created BIGINT NOT NULL,
    modified BIGINT NOT NULL,
    revision_number BIGINT NOT NULL,
    revision_tag TEXT NOT NULL
);
CREATE UNIQUE INDEX accounts_api_key ON accounts (api_key);
CREATE UNIQUE INDEX accounts_path ON accounts (path);
CREATE INDEX accounts_parent_id ON accounts (parent_id, id);

CREATE TABLE webhooks (
    id TEXT COLLATE "C" PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    hook TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    include_subaccounts BOOLEAN NOT NULL,
    disabled_reason TEXT,
    doc TEXT NOT NULL,
    created BIGINT NOT NULL,
    modified BIGINT NOT NULL,
    revision_number BIGINT NOT NULL,
    revision_tag TEXT NOT NULL
);
CREATE UNIQUE INDEX webhooks_account_id_id ON webhooks (account_id, id);

-- No foreign keys: a delivery may finish after its hook (or account) was deleted, and its
-- attempt record must still be written; delete_account removes them explicitly.
CREATE TABLE attempts (
    id TEXT COLLATE "C" PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL,
    hook_id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX attempts_account_id_created_id ON attempts (account_id, created, id);
CREATE INDEX attempts_hook_id_created_id ON attempts (hook_id, created, id);
CREATE INDEX attempts_created ON attempts (created);
