"""PostgreSQL: client queries, base backups, WAL, dumps, recovery."""
