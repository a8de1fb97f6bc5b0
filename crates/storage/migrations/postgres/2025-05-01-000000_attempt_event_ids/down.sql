DROP INDEX attempts_hook_id_event_id_created_id;
ALTER TABLE attempts DROP COLUMN event_id;
