-- Failure counts of the auto-disabler (docs/kazoo.md#auto-disable): one row per hook that failed
-- recently, with the window opened by its first counted failure and the failures counted in it.
-- No foreign key: a failure may be counted after its hook was deleted; stale rows are pruned by age.
CREATE TABLE webhook_failures (
    hook_id TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    -- Unix milliseconds.
    window_started_ms INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    -- Unix milliseconds.
    last_failure_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_failures_last_failure_ms ON webhook_failures (last_failure_ms);

-- Standard Webhooks signing secrets, kept apart from the documents so no listing or document read
-- can return them. They go with their hook (foreign keys are enforced per connection).
CREATE TABLE webhook_secrets (
    hook_id TEXT NOT NULL PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    secret TEXT NOT NULL
) STRICT;
