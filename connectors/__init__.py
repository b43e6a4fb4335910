"""One package per partner: client, webhook verification, normalizer, and a sandbox server."""
