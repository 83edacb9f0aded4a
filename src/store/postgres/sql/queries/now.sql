SELECT now_ms() AS now
