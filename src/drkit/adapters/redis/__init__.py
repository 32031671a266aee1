"""Redis: a typed client (persistence, keyspace, write pauses), the files a server keeps
(RDB, Redis 7 multi-part AOF), consistent snapshots of them, and redis-check-rdb/aof."""
