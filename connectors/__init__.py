"""Platform connectors."""
