"""The track store: schema, writes and reads. No SQL lives outside this package."""
