-- Store time: the database server's clock in epoch milliseconds. clock_timestamp(), not now():
-- now() is frozen at the start of the transaction.
CREATE FUNCTION now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint
$$;

-- The smallest string greater than every string starting with p, in code point order (what
-- COLLATE "C" compares for UTF-8), or NULL when there is none (empty p, or only U+10FFFF).
CREATE FUNCTION prefix_end(p text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  c int;
BEGIN
  FOR i IN REVERSE length(p)..1 LOOP
    c := ascii(substr(p, i, 1));
    IF c < 1114111 THEN
      c := c + 1;
      -- Surrogate code points cannot be stored; the next character is U+E000.
      IF c BETWEEN 55296 AND 57343 THEN
        c := 57344;
      END IF;
      RETURN substr(p, 1, i - 1) || chr(c);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
