"""Every NuOrder call the connector makes, one function each, with where it comes from.

Paths from nuorder.md's sources are used as they are. Those it marks UNCONFIRMED are each kept
in one function here, named in the README, and played the same way by the sandbox:

- `companies_modified_since`: `GET /api/companies/list?modified_since=` (NuOrder documents the
  codes list only; the filter is also applied here, so a server ignoring it costs bandwidth,
  not correctness);
- `products`: `GET /api/products/list` (the documented listing is per season);
- `warehouses`: `GET /api/warehouses/list`;
- `approved_orders`: the `modified_after` / `modified_before` range parameters of
  `GET /api/orders/approved/detail` (the path is documented; the range is filtered here too);
- `mark_shipped`: the status value `shipped` of `POST /api/order/{id}/status`;
- `add_shipment`, `remove_shipment`: NuOrder's shipment write (`POST /api/order/{id}/shipments`,
  `DELETE /api/order/{id}/shipments/{shipment_id}`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

Request = Callable[[str, str, Any], Awaitable[Any]]  # (method, path with query, body)


def _id(value: str) -> str:
    return quote(value, safe="")


class NuOrderApi:
    def __init__(self, request: Request) -> None:
        self._request = request

    # companies

    async def companies_modified_since(self, since: str | None) -> list[dict[str, Any]]:
        """UNCONFIRMED path and filter."""
        query = f"?{urlencode({'modified_since': since})}" if since else ""
        found = await self._request("GET", f"/api/companies/list{query}", None) or []
        return [c for c in found if not since or str(c.get("modified_on", "")) >= since]

    async def create_company(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`PUT /api/company/new`: NuOrder answers 409 when the code is taken."""
        return await self._request("PUT", "/api/company/new", fields)

    async def upsert_company(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`PUT /api/company/new/force`: the company with this code, changed (updates and
        archiving go this way; NuOrder documents no update-by-id path)."""
        return await self._request("PUT", "/api/company/new/force", fields)

    # catalogue

    async def products(self) -> list[dict[str, Any]]:
        """UNCONFIRMED path."""
        return await self._request("GET", "/api/products/list", None) or []

    async def warehouses(self) -> list[dict[str, Any]]:
        """UNCONFIRMED path."""
        return await self._request("GET", "/api/warehouses/list", None) or []

    # orders

    async def approved_orders(self, after: str, before: str) -> list[dict[str, Any]]:
        """Approved orders, whole, modified in [after, before]; the range parameters are
        UNCONFIRMED, so the range is applied here as well."""
        query = urlencode({"modified_after": after, "modified_before": before})
        found = await self._request("GET", f"/api/orders/approved/detail?{query}", None) or []
        return [o for o in found if after <= str(o.get("modified_on", "")) <= before]

    async def order(self, order_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/order/{_id(order_id)}", None)

    async def mark_processed(self, order_id: str) -> dict[str, Any]:
        return await self._request("POST", f"/api/order/{_id(order_id)}/process", None)

    async def mark_shipped(self, order_id: str) -> dict[str, Any]:
        """UNCONFIRMED status value."""
        return await self._request("POST", f"/api/order/{_id(order_id)}/status",
                                   {"status": "shipped"})

    async def add_shipment(self, order_id: str, shipment: dict[str, Any]) -> dict[str, Any]:
        """UNCONFIRMED: NuOrder's shipment write."""
        return await self._request("POST", f"/api/order/{_id(order_id)}/shipments", shipment)

    async def remove_shipment(self, order_id: str, shipment_id: str) -> Any:
        """UNCONFIRMED: withdrawing a shipment written before."""
        return await self._request(
            "DELETE", f"/api/order/{_id(order_id)}/shipments/{_id(shipment_id)}", None)

    # inventory

    async def replenish(self, warehouse_id: str, items: Sequence[dict[str, Any]]) -> Any:
        """`PUT /api/v3.0/warehouse/{wh}/replenishments`, in bulk."""
        return await self._request("PUT", f"/api/v3.0/warehouse/{_id(warehouse_id)}"
                                          "/replenishments", {"replenishments": list(items)})

    async def refresh_flags(self, product_ids: Sequence[str]) -> Any:
        """`PUT /api/inventory/flags`: NuOrder recomputes availability for these products."""
        return await self._request("PUT", "/api/inventory/flags",
                                   {"product_ids": list(product_ids)})
