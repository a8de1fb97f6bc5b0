DROP TABLE attempts;
DROP TABLE webhooks;
DROP TABLE accounts;
DROP TABLE settings;
