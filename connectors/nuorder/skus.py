"""NuOrder sells a product (style, color, season) in sizes, each with its UPC; a merchant's SKU
is one product in one size. The rule from one to the other is the connector's `sku` option:

- `upc` (the default): the size's UPC is the SKU, as 3PLs scan it;
- `style_color_size`: `{style_number}-{color}-{size}`.

Both ways are explicit: `sku_of` makes the SKU of a product's size (None when the rule cannot:
a size with no UPC), and `SkuMap` finds the product and size of a SKU, from the products the
gateway keeps. An order's lines carry their product's id and size in their line id
(`{product_id}:{size}`), so a shipment's lines go back to NuOrder without a lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

UPC, STYLE_COLOR_SIZE = "upc", "style_color_size"
RULES = (UPC, STYLE_COLOR_SIZE)


def sku_of(rule: str, product: Mapping[str, Any], size: Mapping[str, Any]) -> str | None:
    """The SKU of one size of a product (NuOrder's fields), or None when it has none."""
    if rule == UPC:
        upc = str(size.get("upc") or "").strip()
        return upc or None
    parts = [str(product.get("style_number") or "").strip(),
             str(product.get("color") or "").strip(), str(size.get("size") or "").strip()]
    return "-".join(parts) if all(parts) else None


def line_id(product_id: str, size: str) -> str:
    return f"{product_id}:{size}"


def split_line_id(value: str) -> tuple[str, str]:
    product_id, _, size = value.partition(":")
    return product_id, size


@dataclass(frozen=True)
class Size:
    product_id: str
    size: str
    sku_id: str | None  # NuOrder's own id of this SKU (what replenishments name)


class SkuMap:
    """SKU -> product and size, from NuOrder's products; and back."""

    def __init__(self, rule: str, products: Iterable[Mapping[str, Any]]) -> None:
        self.rule = rule
        self._by_sku: dict[str, Size] = {}
        self._by_size: dict[tuple[str, str], str] = {}
        self.duplicates: dict[str, list[Size]] = {}
        for product in products:
            product_id = str(product.get("_id") or "")
            for size in product.get("sizes") or []:
                sku = sku_of(rule, product, size)
                if not product_id or sku is None:
                    continue
                found = Size(product_id, str(size.get("size")), size.get("_id"))
                if sku in self._by_sku and self._by_sku[sku] != found:
                    self.duplicates.setdefault(sku, [self._by_sku[sku]]).append(found)
                    continue  # the first keeps it; the clash is reported, never guessed
                self._by_sku[sku] = found
                self._by_size[(product_id, found.size)] = sku

    def size_of(self, sku: str) -> Size | None:
        return self._by_sku.get(sku)

    def sku(self, product_id: str, size: str) -> str | None:
        return self._by_size.get((product_id, size))

    def __len__(self) -> int:
        return len(self._by_sku)
