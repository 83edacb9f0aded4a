-- Server facts the store depends on: UTF8 (key order and text round-trips) and version 13+.
SELECT current_setting('server_encoding') AS encoding, current_setting('server_version_num')::int AS version
