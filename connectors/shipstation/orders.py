"""The orders a batch of ShipStation shipments and fulfillments names, from as few requests as
the API allows (../shared/partners/shipstation.md, "Split / merge / void").

A label on an ordinary order carries its order's references itself (`advancedOptions.
mergedOrSplit` false): no lookup. A label on a split child or a merge survivor needs its
order's `parentId` / `mergedIds`, and the parent's or absorbed orders' keys and numbers; a
fulfillment needs its order's items. One paged `GET /orders?modifyDateStart=` listing of the
orders modified in the window (a label marks its order shipped, so its order is in it; a
split or a merge modifies the orders involved) resolves a whole batch; an order outside the
window is looked up alone, and only while that is cheaper than listing on.

What never changes of an order (its id, key and number) is kept for as long as there is
room, and primed from the orders this gateway pushed (their links record ShipStation's order
id, and the key is the FO id); whole orders only briefly, since splits and merges change
their items and `mergedIds`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.shipstation.client import ShipStationClient

FRESH_SECONDS = 300.0
FRESH_SIZE = 4096
IDENTITY_SIZE = 100_000
LIST_PAGE_SIZE = 500  # ShipStation's maximum


def order_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def trimmed(order: Mapping[str, Any]) -> dict[str, Any]:
    """What normalizing needs of an order: references, split/merge links, items."""
    options = order.get("advancedOptions") or {}
    return {"orderId": order.get("orderId"), "orderKey": order.get("orderKey"),
            "orderNumber": order.get("orderNumber"),
            "advancedOptions": {"mergedOrSplit": options.get("mergedOrSplit"),
                                "parentId": options.get("parentId"),
                                "mergedIds": list(options.get("mergedIds") or [])},
            "items": order.get("items") or []}


def needs_order(kind: str, record: Mapping[str, Any]) -> bool:
    """A fulfillment needs its order's items; a label only its split or merge links."""
    if kind == "fulfillment":
        return order_id(record.get("orderId")) is not None
    options = record.get("advancedOptions")
    if isinstance(options, dict) and options.get("mergedOrSplit") is False:
        return False
    return order_id(record.get("orderId")) is not None


def related_ids(order: Mapping[str, Any] | None) -> list[int]:
    """A split child's parent and a merge survivor's absorbed orders."""
    options = (order or {}).get("advancedOptions") or {}
    found = [order_id(options.get("parentId")), *map(order_id, options.get("mergedIds") or [])]
    return [i for i in found if i is not None]


def for_record(kind: str, record: Mapping[str, Any],
               orders: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The orders one record needs, its own first, out of a resolved batch."""
    own = orders.get(order_id(record.get("orderId")) or -1) if needs_order(kind, record) else None
    if own is None:
        return []
    return [dict(own)] + [dict(orders[i]) for i in related_ids(own) if i in orders]


class OrderBook:
    def __init__(self, client: ShipStationClient) -> None:
        self.client = client
        self._fresh: OrderedDict[int, tuple[float, dict[str, Any]]] = OrderedDict()
        self._identity: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def know(self, order: Mapping[str, Any]) -> None:
        """An order's id, key and number, which never change (e.g. from an FO's link)."""
        oid = order_id(order.get("orderId"))
        if oid is None:
            return
        self._identity[oid] = {"orderId": oid, "orderKey": order.get("orderKey"),
                               "orderNumber": order.get("orderNumber")}
        self._identity.move_to_end(oid)
        while len(self._identity) > IDENTITY_SIZE:
            self._identity.popitem(last=False)

    def _remember(self, order: Mapping[str, Any]) -> dict[str, Any] | None:
        oid = order_id(order.get("orderId"))
        if oid is None:
            return None
        kept = trimmed(order)
        self._fresh[oid] = (time.monotonic(), kept)
        self._fresh.move_to_end(oid)
        while len(self._fresh) > FRESH_SIZE:
            self._fresh.popitem(last=False)
        if order.get("orderKey") or order.get("orderNumber"):
            self.know(order)
        return kept

    def _fresh_order(self, oid: int) -> dict[str, Any] | None:
        cached = self._fresh.get(oid)
        if cached and time.monotonic() - cached[0] < FRESH_SECONDS:
            return cached[1]
        return None

    async def _single(self, oid: int, client: ShipStationClient) -> dict[str, Any] | None:
        order = await client.get(client.url(f"/orders/{oid}"))
        return self._remember(order) if isinstance(order, dict) else None

    async def _list_modified(self, since: str, wanted: set[int],
                             found: dict[int, dict[str, Any]], client: ShipStationClient) -> None:
        """Page through the orders modified since `since` while that is the cheaper way to
        find what is still wanted (a single lookup per order left is the other)."""
        page = 1
        while True:
            answer = await client.get(client.url("/orders"), {
                "modifyDateStart": since, "sortBy": "ModifyDate", "sortDir": "ASC",
                "pageSize": LIST_PAGE_SIZE, "page": page})
            orders = answer.get("orders") if isinstance(answer, dict) else None
            for order in orders or []:
                if isinstance(order, dict):
                    kept = self._remember(order)
                    if kept is not None and kept["orderId"] in wanted:
                        found[kept["orderId"]] = kept
            pages = (answer.get("pages") if isinstance(answer, dict) else None) or 1
            left = len(wanted - found.keys())
            if not left or page >= pages or left <= pages - page:
                return
            page += 1

    async def resolve(self, records: Iterable[tuple[str, Mapping[str, Any]]],
                      modified_since: str | None, client: ShipStationClient | None = None
                      ) -> dict[int, dict[str, Any]]:
        """Every order the records need, by id: their own (whole) and each one's split
        parent or merged orders (at least id, key and number). `client`: whose requests
        these are (a poll's take their share of the budget); default the book's."""
        client = client or self.client
        needed = {oid for kind, record in records if needs_order(kind, record)
                  and (oid := order_id(record.get("orderId"))) is not None}
        found: dict[int, dict[str, Any]] = {}
        for oid in needed:
            if (order := self._fresh_order(oid)) is not None:
                found[oid] = order
        missing = needed - found.keys()
        if len(missing) > 1 and modified_since:
            await self._list_modified(modified_since, missing, found, client)
        for oid in sorted(missing - found.keys()):
            if (order := await self._single(oid, client)) is not None:
                found[oid] = order
        related = {r for oid in needed if oid in found for r in related_ids(found[oid])}
        for rid in sorted(related - found.keys()):
            known = self._fresh_order(rid) or self._identity.get(rid)
            if known is None:
                known = await self._single(rid, client)
            if known is not None:
                found[rid] = known
        return found
