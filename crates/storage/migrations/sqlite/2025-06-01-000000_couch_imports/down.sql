DROP TABLE couch_imports;
