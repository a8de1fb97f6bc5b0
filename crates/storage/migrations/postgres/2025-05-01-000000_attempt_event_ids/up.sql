-- The event id of each attempt, copied out of its document so one event's records of a hook are
-- one indexed read, newest first (the test callout waits for its record this way). Earlier rows
-- are filled from their documents; a document whose event id is not a string leaves it NULL, as
-- inserts do.
ALTER TABLE attempts ADD COLUMN event_id TEXT COLLATE "C" NULL;
UPDATE attempts SET event_id = doc::json ->> 'event_id' WHERE json_typeof(doc::json -> 'event_id') = 'string';
CREATE INDEX attempts_hook_id_event_id_created_id ON attempts (hook_id, event_id, created, id);
