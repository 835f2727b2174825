"""The web process: health and readiness endpoints (it reads; the worker acts)."""
