SELECT revision, compact_revision FROM meta WHERE id = 1
