"""Benchmarks (not tests): figures measured against pgBackRest and the raw PostgreSQL tools."""
