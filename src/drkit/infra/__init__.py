"""Subprocesses with timeouts, locks, atomic files, the clock, waiting with a deadline."""
