-- Failure counts of the auto-disabler, shared by every dispatcher replica (docs/kazoo.md#auto-disable).
-- One row per hook that failed recently: the window opened by its first counted failure and the
-- failures counted in it. No foreign key: a failure may be counted after its hook was deleted;
-- stale rows are pruned by age.
CREATE TABLE webhook_failures (
    hook_id TEXT COLLATE "C" PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL,
    -- Unix milliseconds.
    window_started_ms BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    -- Unix milliseconds.
    last_failure_ms BIGINT NOT NULL
);
CREATE INDEX webhook_failures_last_failure_ms ON webhook_failures (last_failure_ms);

-- Standard Webhooks signing secrets, kept apart from the documents so no listing or document read
-- can return them. They go with their hook.
CREATE TABLE webhook_secrets (
    hook_id TEXT COLLATE "C" PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    secret TEXT NOT NULL
);
