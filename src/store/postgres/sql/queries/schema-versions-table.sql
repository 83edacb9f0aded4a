CREATE TABLE IF NOT EXISTS schema_versions (
  version int PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
)
