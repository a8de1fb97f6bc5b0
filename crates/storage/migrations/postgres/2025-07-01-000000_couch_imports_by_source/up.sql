-- An import looks its documents up by source, a batch at a time (`source = ANY(...)`). With the
-- kind first in the key, a planner whose statistics predate the import (the table grows from
-- nothing during the first one) scans every row of the kind and filters; with the source first,
-- each lookup is an index probe. SQLite keeps the first order: its planner probes both columns.
ALTER TABLE couch_imports DROP CONSTRAINT couch_imports_pkey, ADD PRIMARY KEY (source, kind);
