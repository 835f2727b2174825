"""School social media monitor: the core service."""
