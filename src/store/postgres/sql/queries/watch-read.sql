-- The next changes under a prefix after the cursor (revision $1, index $2 within it), at most $4,
-- with the head and compaction revisions of the same snapshot. Revisions commit in order (the
-- counter lock), so every change up to `head` is visible here.
SELECT m.revision AS head, m.compact_revision, c.revision, c.idx, c.deleted, c.key, c.value,
  c.create_revision, c.version, c.lease
FROM meta m
LEFT JOIN LATERAL (
  SELECT changelog.* FROM changelog
  WHERE (changelog.revision, changelog.idx) > ($1::bigint, $2::int) AND starts_with(changelog.key, $3)
  ORDER BY changelog.revision, changelog.idx
  LIMIT $4
) c ON true
WHERE m.id = 1
ORDER BY c.revision, c.idx
