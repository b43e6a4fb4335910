"""What the store connectors (shopify, bigcommerce, ...) share in a marketplace flow: no
connector type of its own (see base.py)."""
