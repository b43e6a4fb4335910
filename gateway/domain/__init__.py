"""The domain: canonical records and the pure reconciliation rules.

It imports nothing else of gateway/ and nothing of storage/; storage/ imports only this.
"""
