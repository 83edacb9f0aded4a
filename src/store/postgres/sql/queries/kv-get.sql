-- One key and the revision it was read at, from one snapshot.
SELECT m.revision AS head, k.key, k.value, k.create_revision, k.mod_revision, k.version, k.lease
FROM meta m
LEFT JOIN kv k ON k.key = $1
WHERE m.id = 1
