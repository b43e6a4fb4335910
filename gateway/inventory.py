"""Inventory levels on their way to partners: consolidated before anything is sent.

A level is a level, not a delta: two levels for the same warehouse, date and SKU in one push
are the same fact told twice, so the last one given wins (its quantity and its prebook flag);
they are never added up. Lines keep the order of each key's first appearance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def consolidate(levels: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for level in levels:
        key = (str(level["warehouse"]), level.get("date"), str(level["sku"]))
        found[key] = {"warehouse": key[0], "sku": key[2], "date": key[1],
                      "quantity": int(level["quantity"]),
                      "prebook": bool(level.get("prebook", False))}
    return list(found.values())
