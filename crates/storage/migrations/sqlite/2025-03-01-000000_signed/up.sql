-- Whether a hook has a signing secret, kept on the hook row so documents and listings can show
-- `"signed": true` without reading the secrets. Written in the same transaction as the secret.
ALTER TABLE webhooks ADD COLUMN signed INTEGER NOT NULL DEFAULT 0 CHECK (signed IN (0, 1));
UPDATE webhooks SET signed = 1 WHERE id IN (SELECT hook_id FROM webhook_secrets);
