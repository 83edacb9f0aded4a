-- Whether the store's schema has a version table yet (search_path is the store's schema).
SELECT to_regclass('schema_versions') IS NOT NULL AS present
