"""Policy rules: data plus pure functions (no I/O; time passed in)."""
