DROP TABLE webhook_secrets;
DROP TABLE webhook_failures;
