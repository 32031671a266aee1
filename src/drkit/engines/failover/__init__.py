"""Streaming standbys, switchover and failover of a replicated PostgreSQL service, the
PostgreSQL 12+ way (standby.signal, primary_conninfo, pg_promote, pg_rewind), journaled
with measured RTO and RPO like recoveries."""
