SELECT published, next_in FROM kv_maintain($1::int, $2::bigint)
