"""The Magento 2 (Adobe Commerce) connector: a store on either side of a marketplace channel
(REST V1; stores.md).

`base_url` is the store's host; calls go to `/rest/{store_code}/V1/...` with `Authorization:
Bearer` (an integration's access token, with "Allow OAuth Access Tokens to be used as
standalone Bearer tokens" on since 2.4.4, or an admin token). Magento Open Source sends no
webhooks: both sides poll. Seller side: the FO is created as an order (`ext_order_id` = the FO
id, so a retry finds it; the create route is UNCONFIRMED, see `_create_order`); its shipments
and tracks come back. Buyer side: each shipment allocated is a Magento shipment
(`/V1/order/{id}/ship`, items by `order_item_id`, every tracking number a track). Magento
cannot cancel a shipment: a void removes the shipment's tracks, and the relabel that follows
adds its tracks to that shipment (its items are shipped already), so a correction there
replaces the shipment's tracks. An order becomes `complete` in Magento once invoiced and
shipped; the gateway does not invoice, so it leaves the status to Magento.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from connectors.magento2 import normalize
from connectors.marketplace.base import StoreConnector, common_options
from gateway.config import Config, ConnectorConfig
from gateway.connector import Option
from gateway.domain.records import PartnerOrder, Shipment
from gateway.errors import PartnerRejected
from gateway.metrics import Metrics
from storage import NewInboxEvent, OutboxMessage

SANDBOX_TOKEN = "sandbox-magento-token"
SANDBOX_ABOUT = f"""\
A Magento 2 store stand-in: REST V1 under /rest/default/V1 with a bearer token; orders
(statuses and states; complete only once invoiced and shipped), the searchCriteria listing
with its total_count (and the old versions' trap: a page past the end answers the last page
again), shipments (/V1/order/ID/ship, no cancel), tracks added and deleted.

Credentials: $MAGENTO_TOKEN, or {SANDBOX_TOKEN} when unset.

Control routes (no auth):
  POST /_sandbox/orders                  a customer's order {{lines: [{{sku, quantity}}]}}
  POST /_sandbox/orders/ID/ship          the seller ships {{items: [{{sku, qty}}], tracks}}
  POST /_sandbox/shipments/ID/retrack    the seller replaces a shipment's tracks {{tracks}}
  POST /_sandbox/faults; GET /_sandbox/state, /_sandbox/requests
"""


def search(groups: list[list[tuple[str, str, str]]], page: int,
           size: int = 100) -> dict[str, str]:
    """searchCriteria as query parameters: filters in one group OR, groups AND."""
    params = {"searchCriteria[pageSize]": str(size), "searchCriteria[currentPage]": str(page)}
    for g, group in enumerate(groups):
        for f, (field, value, condition) in enumerate(group):
            prefix = f"searchCriteria[filter_groups][{g}][filters][{f}]"
            params.update({f"{prefix}[field]": field, f"{prefix}[value]": value,
                           f"{prefix}[condition_type]": condition})
    return params


class Magento2Connector(StoreConnector):
    platform = "magento2"
    default_reference_field = "ext_order_id"  # by_reference (UNCONFIRMED)
    version_field = "updated_at"
    rules = normalize
    id_field = "entity_id"
    webhooks: ClassVar[bool] = False
    options: ClassVar[tuple[Option, ...]] = (
        Option("access_token_env", str, help="variable holding the bearer token"),
        Option("store_code", str, "default", help="the store view in /rest/{store_code}/V1"),
        *common_options(),
        Option("notify_customer", bool, True, help="buyer side: Magento emails each shipment"),
        Option("page_size", int, 100, minimum=1, maximum=300,
               help="orders per page of the searchCriteria listing"),
        Option("requests_per_second", int, 10, minimum=1, maximum=1000,
               help="calls a second across every replica (core Magento has no limit)"),
    )
    sandbox_port = 8086
    sandbox_about = SANDBOX_ABOUT

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        s = self.settings
        self.budget = self.rate_budget(s["requests_per_second"], 1.0)
        self.prefix = f"/rest/{s['store_code']}/V1"
        self.client = self.store_client(
            {"Authorization": f"Bearer {app_config.secret(s['access_token_env'])}"},
            self.budget, message=_message)

    def status(self) -> dict[str, Any]:
        return self.budget.state()

    async def _call(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                    body: Any = None, background: bool = False) -> Any:
        return (await self.client.call(method, self.prefix + path, params, body,
                                       background=background)).body

    # polling (no webhooks in Magento Open Source)

    async def updated_orders(self, since: str, until: str, buyer: bool) -> list[dict[str, Any]]:
        """Every page by total_count: an older Magento answers a page past the end with the
        last page again, so "an empty page" never comes."""
        found: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            answer = await self._call("GET", "/orders", search([
                [("updated_at", normalize.magento_time(since), "gteq")],
                [("updated_at", normalize.magento_time(until), "lteq")]], page,
                self.settings["page_size"]), background=True) or {}
            for order in answer.get("items") or []:
                found.setdefault(self.order_id(order), order)
            if page * self.settings["page_size"] >= int(answer.get("total_count") or 0) \
                    or not answer.get("items"):
                return [o for o in found.values() if not buyer or self.takes(o)]
            page += 1

    async def _shipments(self, order_id: str, background: bool = False) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/shipments", search(
            [[("order_id", order_id, "eq")]], 1), background=background) or {}
        return [s for s in answer.get("items") or [] if isinstance(s, dict)]

    async def fulfilment_event(self, order: Mapping[str, Any]) -> NewInboxEvent:
        order_id = self.order_id(order)
        return self.fulfilment_body({
            "order_id": order_id, "shipments": await self._shipments(order_id, True),
            "summary": {"status": order.get("status"), "ext_order_id": order.get("ext_order_id"),
                        "updated_at": order.get("updated_at")}})

    def partner_order(self, order: Mapping[str, Any], at: str) -> PartnerOrder:
        return normalize.partner_order(self.name, order, at)

    def shipments(self, detail: Mapping[str, Any], at: str) -> list[Shipment]:
        return normalize.shipments(self.name, detail, at)

    async def normalize_webhook(self, body: Any, headers: Mapping[str, str],
                                at: str) -> list[Any]:
        raise PartnerRejected("Magento 2 sends no webhooks to the gateway")

    # operations: seller side

    async def push_order(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        created = await self._create_order(p)
        return {"partner_order_id": str(created["entity_id"]),
                "increment_id": created.get("increment_id")}

    async def _create_order(self, p: Mapping[str, Any]) -> dict[str, Any]:
        """UNCONFIRMED for this use: the order repository's save route
        (`PUT /V1/orders/create`, Magento's webapi.xml) with the order entity; Magento's own
        checkout goes through a quote instead."""
        ship_to = p.get("ship_to") or {}
        first, _, last = str(ship_to.get("name") or "Customer").partition(" ")
        address = {"address_type": "shipping", "firstname": first, "lastname": last or "-",
                   "street": [s for s in (ship_to.get("street1"), ship_to.get("street2")) if s],
                   "city": ship_to.get("city") or "", "region_code": ship_to.get("state") or "",
                   "postcode": ship_to.get("postal_code") or "",
                   "country_id": ship_to.get("country") or "",
                   "telephone": ship_to.get("phone") or "0", "company": ship_to.get("company")}
        entity = {"ext_order_id": p["fulfillment_order_id"], "status": "processing",
                  "state": "processing", "customer_is_guest": 1,
                  "customer_email": "orders@fulfillment-gateway.invalid",
                  "items": [{"sku": ln["sku"], "name": ln["sku"], "qty_ordered": ln["quantity"],
                             "price": 0, "product_type": "simple"} for ln in p["lines"]],
                  "billing_address": address,
                  "extension_attributes": {"shipping_assignments": [
                      {"shipping": {"address": address, "method": "flatrate_flatrate"}}]},
                  **p.get("partner_fields", {})}
        return await self._call("PUT", "/orders/create", body={"entity": entity})

    def placed_for(self, order: Mapping[str, Any]) -> Any:
        return order.get("ext_order_id")

    async def cancel_placed(self, order_id: str) -> None:
        await self._call("POST", f"/orders/{order_id}/cancel")

    # operations: buyer side

    async def push_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        order_id = str(p["partner_order_id"])
        if p.get("type") == "status_changed":
            return {"skipped": "Magento completes an order once it is invoiced and shipped"}
        shipment = p.get("shipment") or {}
        numbers = list(dict.fromkeys(shipment.get("tracking_numbers") or []))
        carrier = str(shipment.get("carrier") or "custom")
        tracks = [{"track_number": n, "title": carrier, "carrier_code": carrier.lower()}
                  for n in numbers]
        existing = await self._shipments(order_id)
        for s in existing:  # made before an answer was lost
            if numbers and sorted(t.get("track_number") for t in s.get("tracks") or []) \
                    == sorted(numbers):
                return {"partner_fulfillment_id": str(s["entity_id"]), "repeated": True}
        wanted = {str(ln["line_id"]): int(ln["quantity"]) for ln in p["lines"]}
        for s in existing:  # a withdrawn shipment of these items: its tracks replaced
            items = {str(i["order_item_id"]): int(float(i["qty"])) for i in s.get("items") or []
                     if float(i.get("qty") or 0) > 0}
            if not s.get("tracks") and items == wanted:
                for track in tracks:
                    await self._call("POST", "/shipment/track", body={"entity": {
                        **track, "order_id": int(order_id), "parent_id": s["entity_id"]}})
                return {"partner_fulfillment_id": str(s["entity_id"]), "retracked": True}
        shipment_id = await self._call("POST", f"/order/{order_id}/ship", body={
            "items": [{"order_item_id": int(k), "qty": q} for k, q in wanted.items()],
            "notify": self.settings["notify_customer"], "tracks": tracks})
        return {"partner_fulfillment_id": str(shipment_id)}

    async def cancel_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        """Magento cannot cancel a shipment: its tracks are removed (the relabel puts new
        ones on it)."""
        p = message.payload
        shipment_id = str(p.get("partner_fulfillment_id") or "")
        removed = 0
        for s in await self._shipments(str(p["partner_order_id"])):
            if str(s["entity_id"]) != shipment_id:
                continue
            for track in s.get("tracks") or []:
                await self._call("DELETE", f"/shipment/track/{track['entity_id']}")
                removed += 1
        return {"cancelled": True, "partner_fulfillment_id": shipment_id,
                "tracks_removed": removed}

    # sandboxes

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.magento2.sandbox import create_app

        return create_app(app_config.secret(config.settings["access_token_env"]),
                          config.settings["store_code"])

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.magento2.sandbox import create_app

        return create_app(os.environ.get("MAGENTO_TOKEN", SANDBOX_TOKEN))



def _message(body: Any) -> str:
    """Magento's errors: {message, parameters}: %1 placeholders filled in."""
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
        parameters = body.get("parameters")
        if isinstance(parameters, list):
            for n, value in enumerate(parameters, 1):
                text = text.replace(f"%{n}", str(value))
        elif isinstance(parameters, dict):
            for key, value in parameters.items():
                text = text.replace(f"%{key}", str(value))
        return text[:300]
    return str(body)[:300] if body is not None else ""
