ALTER TABLE webhooks DROP COLUMN signed;
