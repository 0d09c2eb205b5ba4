"""The configuration tree and its loader: YAML and XREID_* environment → frozen, validated settings."""
