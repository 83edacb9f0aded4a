-- Keys under a prefix ($1) after $2 (or NULL), at most $3 (NULL: all), in key order (COLLATE "C":
-- code point order), with the revision they were read at, from one snapshot. The statement is
-- planned with its parameter values, so prefix_end($1) and the NULL tests fold into index bounds.
SELECT m.revision AS head, k.key, k.value, k.create_revision, k.mod_revision, k.version, k.lease
FROM meta m
LEFT JOIN LATERAL (
  SELECT kv.* FROM kv
  WHERE kv.key >= $1
    AND (prefix_end($1) IS NULL OR kv.key < prefix_end($1))
    AND ($2::text IS NULL OR kv.key > $2)
  ORDER BY kv.key
  LIMIT $3
) k ON true
WHERE m.id = 1
ORDER BY k.key
