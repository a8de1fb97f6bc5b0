ALTER TABLE couch_imports DROP CONSTRAINT couch_imports_pkey, ADD PRIMARY KEY (kind, source);
