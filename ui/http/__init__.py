"""The HTTP application server: REST, server-sent events."""
