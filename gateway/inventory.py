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


TRUE, FALSE = ("true", "yes", "1", "y"), ("false", "no", "0", "n", "")
COLUMNS = ("warehouse", "sku", "quantity", "date", "prebook")


def read_csv(rows: Iterable[Mapping[str, str | None]], start_line: int = 2,
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """Levels from CSV rows (columns warehouse, sku, quantity, and optionally date and
    prebook), checked as the API checks them; each problem names its line."""
    from pydantic import ValidationError

    from gateway.shapes import InventoryLevel, problems

    levels, found = [], []
    for line, row in enumerate(rows, start_line):
        values: dict[str, Any] = {k: (row.get(k) or "").strip() for k in COLUMNS}
        prebook = values["prebook"].lower()
        if prebook not in TRUE + FALSE:
            found.append(f"line {line}: prebook: true or false, got {values['prebook']!r}")
            continue
        values["prebook"] = prebook in TRUE
        values["date"] = values["date"] or None
        if values["quantity"].lstrip("-").isdigit():
            values["quantity"] = int(values["quantity"])
        try:
            levels.append(InventoryLevel.model_validate(values).model_dump())
        except ValidationError as exc:
            found += [f"line {line}: {p['field'] or 'row'}: {p['message']}"
                      for p in problems(exc)]
    return levels, found
