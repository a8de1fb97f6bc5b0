-- Where each document an import brought over from Kazoo's CouchDB came from, so the import can be
-- repeated: a document at the revision imported last is unchanged, one gone from CouchDB goes here
-- too, and one whose id is no 32-hex id keeps the id it was given. Hooks created here have no row.
CREATE TABLE couch_imports (
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    local_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    revision TEXT NOT NULL,
    PRIMARY KEY (kind, source)
);
