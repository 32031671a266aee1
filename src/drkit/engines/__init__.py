"""Use cases: backup, wal, verify, restore, check, ... They take frozen domain objects and
ports, and return results; rendering is the CLI's job."""
