"""Persistence: engine and sessions, tables, queries and migrations."""
