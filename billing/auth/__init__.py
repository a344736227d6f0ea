"""API keys: bearer tokens stored as SHA-256 digests, each with a role."""
