"""The weekly SLT digest: figures, charts, rendering and once-only sending."""
