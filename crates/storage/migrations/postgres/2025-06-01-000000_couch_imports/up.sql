-- Where each document an import brought over from Kazoo's CouchDB came from, so the import can be
-- repeated: a document at the revision imported last is unchanged, one gone from CouchDB goes here
-- too, and one whose id is no 32-hex id keeps the id it was given. Hooks created here have no row.
CREATE TABLE couch_imports (
    kind TEXT COLLATE "C" NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    local_id TEXT COLLATE "C" NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL,
    revision TEXT NOT NULL,
    PRIMARY KEY (kind, source)
);
