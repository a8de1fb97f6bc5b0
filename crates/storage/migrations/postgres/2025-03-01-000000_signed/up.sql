-- Whether a hook has a signing secret, kept on the hook row so documents and listings can show
-- `"signed": true` without reading the secrets. Written in the same transaction as the secret.
ALTER TABLE webhooks ADD COLUMN signed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE webhooks SET signed = TRUE WHERE id IN (SELECT hook_id FROM webhook_secrets);
