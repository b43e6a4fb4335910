"""The BigCommerce connector: a store on either side of a marketplace channel (stores.md).

v2 orders and shipments over `https://api.bigcommerce.com/stores/{store_hash}` (the connector's
`base_url`), `X-Auth-Token` from the environment. Seller side: the FO is created as an order
(`external_id` = the FO id, so a retry finds it), its shipments come back (one tracking number
each); a shipment BigCommerce no longer lists was deleted, so it is voided. Buyer side: each
shipment allocated goes back as shipments, one per tracking number (the units dealt out over
them); a void deletes them; the FO fulfilled sets the order Shipped (2). Webhooks (v3 hooks,
thin: scope and id) are verified as Standard Webhooks signed with the app's client secret
(the header names are UNCONFIRMED in BigCommerce's text, see `verify`), then the order is read.
Rate limit: the store's quota, shared by every replica, and the `X-Rate-Limit-*` headers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from connectors.bigcommerce import normalize
from connectors.marketplace.base import (
    ORDERS_KIND,
    StoreConnector,
    common_options,
    credential_options,
    tracking_units,
)
from gateway.config import Config, ConnectorConfig
from gateway.connector import Option, WebhookRequest
from gateway.domain.records import PartnerOrder, Shipment
from gateway.errors import BadRequest, PartnerRejected, WebhookRejected
from gateway.metrics import Metrics
from storage import NewInboxEvent, OutboxMessage

SANDBOX_TOKEN, SANDBOX_CLIENT_SECRET = "sandbox-bc-token", "sandbox-bc-client-secret"
SANDBOX_ABOUT = f"""\
A BigCommerce store stand-in: v2 orders (status ids and the shipped roll-up), products,
shipping addresses and shipments (one tracking number each; 204 on an empty list), page/limit
listing with min/max_date_modified, the X-Rate-Limit-* headers and 429 past the quota, v3
webhooks signed as Standard Webhooks with the client secret.

Credentials: $BIGCOMMERCE_TOKEN and $BIGCOMMERCE_CLIENT_SECRET, or {SANDBOX_TOKEN} /
{SANDBOX_CLIENT_SECRET} when unset.

Control routes (no auth):
  POST /_sandbox/orders               a buyer's order {{products: [{{sku, quantity}}], ...}}
  POST /_sandbox/orders/ID/ship       the seller ships {{items: [{{sku, quantity}}], tracking_number}}
  POST /_sandbox/orders/ID/shipments/SID/delete   the seller deletes a shipment
  POST /_sandbox/hooks                {{"url"}}: where the store's webhooks go
  POST /_sandbox/faults               {{"path", "method", "status", "times"}}
  GET  /_sandbox/state, /_sandbox/requests
"""
PAGE = 250


class BigCommerceConnector(StoreConnector):
    platform = "bigcommerce"
    default_reference_field = "external_id"  # by_reference (UNCONFIRMED)
    version_field = "date_modified"
    rules = normalize
    options: ClassVar[tuple[Option, ...]] = (
        *credential_options("variable holding the API account's access token"),
        *common_options(),
        Option("rate_limit_per_window", int, 150, minimum=1, maximum=100_000,
               help="the store's quota (Standard/Plus 150, Pro 450 per 30 s)"),
        Option("rate_limit_window_seconds", float, 30.0, minimum=1.0),
    )
    stored_headers: ClassVar[tuple[str, ...]] = ()
    sandbox_port = 8083
    sandbox_about = SANDBOX_ABOUT

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        s = self.settings
        self.budget = self.rate_budget(s["rate_limit_per_window"],
                                       s["rate_limit_window_seconds"])
        self.client = self.store_client(
            {"X-Auth-Token": app_config.secret(s["access_token_env"])}, self.budget,
            retry_after=_reset_seconds, observe=self._observe, message=_message)
        secret = app_config.secret(s["client_secret_env"])
        self._webhook = Webhook(base64.b64encode(secret.encode()).decode())

    def _observe(self, headers: Mapping[str, str]) -> None:
        quota = _int(headers.get("X-Rate-Limit-Requests-Quota"))
        left = _int(headers.get("X-Rate-Limit-Requests-Left"))
        reset = _int(headers.get("X-Rate-Limit-Time-Reset-Ms"))
        self.budget.observe(quota, left, None if reset is None else reset / 1000)

    def status(self) -> dict[str, Any]:
        return self.budget.state()

    async def _get(self, path: str, params: Mapping[str, Any] | None = None,
                   background: bool = False) -> Any:
        answer = await self.client.call("GET", path, params, background=background)
        return answer.body  # None for BigCommerce's 204 on an empty list

    # webhooks

    def verify(self, request: WebhookRequest) -> str | None:
        """A Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature:
        UNCONFIRMED names in BigCommerce's text; the scheme is theirs since 2025) keyed by the
        client secret; the body's `hash` is the de-duplication key BigCommerce documents."""
        headers = {k.lower(): v for k, v in request.headers.items()
                   if k.lower().startswith("webhook-")}
        try:
            self._webhook.verify(request.body, headers)
        except WebhookVerificationError as exc:
            raise WebhookRejected(f"BigCommerce webhook signature: {exc}") from None
        body = request.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(body.get("scope"), str):
            raise BadRequest("not a BigCommerce webhook (expected {scope, data: {type, id}})")
        if order_of(body) is None:
            return None  # a scope about something else than an order
        return f"hash:{body.get('hash') or headers.get('webhook-id')}"

    async def normalize_webhook(self, body: Any, headers: Mapping[str, str],
                                at: str) -> list[Any]:
        answer = await self.client.call("GET", f"/v2/orders/{order_of(body)}", accept=(404,))
        if answer.status == 404:  # deleted since: nothing to take or watch
            return []
        return await self.records_of_order(answer.body, at)

    # polling

    async def updated_orders(self, since: str, until: str, buyer: bool) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = await self._get("/v2/orders", {
                "min_date_modified": normalize.rfc2822(since),
                "max_date_modified": normalize.rfc2822(until),
                "sort": "date_modified:asc", "page": page, "limit": PAGE}, background=True)
            batch = batch or []
            found.extend(o for o in batch if isinstance(o, dict))
            if len(batch) < PAGE:
                return [o for o in found if not buyer or self.takes(o)]
            page += 1

    async def order_detail(self, order: Mapping[str, Any]) -> dict[str, Any]:
        order_id = order["id"]
        return {"order": dict(order),
                "products": await self._get(f"/v2/orders/{order_id}/products",
                                            background=True) or [],
                "shipping_addresses": await self._get(
                    f"/v2/orders/{order_id}/shipping_addresses", background=True) or []}

    async def poll_order_event(self, order: Mapping[str, Any]) -> NewInboxEvent:
        return self.order_event(await self.order_detail(order), self.order_id(order))

    def partner_order(self, order: Mapping[str, Any], at: str) -> PartnerOrder:
        return normalize.partner_order(self.name, order, at)

    async def fulfilment_event(self, order: Mapping[str, Any]) -> NewInboxEvent:
        order_id = str(order["id"])
        stored = await self.stored_record(ORDERS_KIND, order_id)
        products = (stored.fields.get("order") or {}).get("products") if stored else None
        if not products:  # read once: an order's products do not change
            products = {str(p["id"]): p.get("sku") or str(p.get("product_id"))
                        for p in await self._get(f"/v2/orders/{order_id}/products",
                                                 background=True) or []}
        shipments = await self._get(f"/v2/orders/{order_id}/shipments", background=True) or []
        return self.fulfilment_body({
            "order_id": order_id, "shipments": shipments, "products": products,
            "summary": {"status_id": order.get("status_id"),
                        "external_id": order.get("external_id"),
                        "date_modified": order.get("date_modified"), "products": products}})

    def shipments(self, detail: Mapping[str, Any], at: str) -> list[Shipment]:
        return normalize.shipments(self.name, detail, at)

    # operations: seller side

    async def push_order(self, message: OutboxMessage) -> dict[str, Any]:
        """The FO as a BigCommerce order, Awaiting Fulfillment; `external_id` is the FO id, so
        a retry after a lost answer finds the order instead of making a second."""
        p = message.payload
        fo_id = p["fulfillment_order_id"]
        ship_to = p.get("ship_to") or {}
        first, _, last = str(ship_to.get("name") or "Customer").partition(" ")
        address = {"first_name": first, "last_name": last or "-",
                   "street_1": ship_to.get("street1") or "", "street_2": ship_to.get("street2")
                   or "", "city": ship_to.get("city") or "", "state": ship_to.get("state") or "",
                   "zip": ship_to.get("postal_code") or "",
                   "country_iso2": ship_to.get("country") or "", "email": "", "phone":
                   ship_to.get("phone") or "", "company": ship_to.get("company") or ""}
        body = {"status_id": normalize.AWAITING_FULFILLMENT, "customer_id": 0,
                "external_id": fo_id, "external_source": "fulfillment-gateway",
                "staff_notes": f"order {p.get('order_number') or fo_id} via the gateway",
                "billing_address": address, "shipping_addresses": [address],
                "products": [{"name": ln["sku"], "sku": ln["sku"], "quantity": ln["quantity"],
                              "price_inc_tax": 0, "price_ex_tax": 0} for ln in p["lines"]],
                **p.get("partner_fields", {})}
        created = (await self.client.call("POST", "/v2/orders", body=body)).body
        return {"partner_order_id": str(created["id"])}

    def placed_for(self, order: Mapping[str, Any]) -> Any:
        return order.get("external_id")

    async def cancel_placed(self, order_id: str) -> None:
        await self.client.call("PUT", f"/v2/orders/{order_id}",
                               body={"status_id": normalize.CANCELLED})

    # operations: buyer side

    async def push_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        order_id = p["partner_order_id"]
        if p.get("type") == "status_changed":
            if p.get("new_status") != "fulfilled":
                return {"skipped": f"no BigCommerce status for {p.get('new_status')}"}
            order = await self._get(f"/v2/orders/{order_id}")
            if int(order.get("status_id") or 0) not in normalize.DONE:
                await self.client.call("PUT", f"/v2/orders/{order_id}",
                                       body={"status_id": normalize.SHIPPED})
            return {"status_id": normalize.SHIPPED}
        shipment = p.get("shipment") or {}
        key = f"gateway {p['fulfillment_order_id']}:{p['shipment_id']}"
        existing = await self._get(f"/v2/orders/{order_id}/shipments") or []
        made = [str(s["id"]) for s in existing if str(s.get("comments") or "").startswith(key)]
        addresses = await self._get(f"/v2/orders/{order_id}/shipping_addresses") or []
        if not addresses:
            raise PartnerRejected(f"BigCommerce order {order_id} has no shipping address")
        carrier = str(shipment.get("carrier") or "").lower()
        parts = tracking_units(p["lines"], list(shipment.get("tracking_numbers") or []))
        for index, (number, lines) in enumerate(parts):
            part_key = f"{key}:{index + 1}/{len(parts)}"
            if any(str(s.get("comments") or "") == part_key for s in existing):
                continue  # made before an answer was lost
            created = (await self.client.call("POST", f"/v2/orders/{order_id}/shipments", body={
                "order_address_id": addresses[0]["id"],
                "items": [{"order_product_id": int(ln["line_id"]), "quantity": ln["quantity"]}
                          for ln in lines],
                "tracking_number": number[:50],
                "shipping_provider": carrier if carrier in normalize.PROVIDERS else "",
                "tracking_carrier": carrier,
                "tracking_link": (shipment.get("tracking_url") or "")[:500] if len(parts) == 1
                else "", "comments": part_key})).body
            made.append(str(created["id"]))
        return {"partner_fulfillment_id": ",".join(made), "shipments": len(made)}

    async def cancel_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        order_id = p["partner_order_id"]
        ids = [i for i in str(p.get("partner_fulfillment_id") or "").split(",") if i]
        if not ids:
            key = f"gateway {p['fulfillment_order_id']}:{p['shipment_id']}"
            ids = [str(s["id"]) for s in await self._get(f"/v2/orders/{order_id}/shipments")
                   or [] if str(s.get("comments") or "").startswith(key)]
        for shipment_id in ids:
            await self.client.call("DELETE", f"/v2/orders/{order_id}/shipments/{shipment_id}",
                                   accept=(404,))
        return {"cancelled": True, "partner_fulfillment_id": ",".join(ids)}

    # demos

    @classmethod
    async def demo_ship(cls, ctx: Any, partner_order_id: str,
                        parts: Sequence[Sequence[tuple[str, int]]]) -> list[dict[str, Any]]:
        from connectors.bigcommerce import demo

        numbers = [f"1ZBC{partner_order_id}{n + 1:02d}" for n in range(len(parts))]
        return await demo.ship(ctx, partner_order_id, parts, numbers)

    @classmethod
    async def demo_reship(cls, ctx: Any, partner_order_id: str, external_id: str,
                          tracking: str) -> dict[str, Any]:
        from connectors.bigcommerce import demo

        return await demo.reship(ctx, partner_order_id, external_id, tracking)

    # sandboxes

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.bigcommerce.sandbox import create_app

        s = config.settings
        return create_app(app_config.secret(s["access_token_env"]),
                          app_config.secret(s["client_secret_env"]),
                          quota=s["rate_limit_per_window"],
                          window_seconds=s["rate_limit_window_seconds"])

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.bigcommerce.sandbox import create_app

        return create_app(os.environ.get("BIGCOMMERCE_TOKEN", SANDBOX_TOKEN),
                          os.environ.get("BIGCOMMERCE_CLIENT_SECRET", SANDBOX_CLIENT_SECRET))


def order_of(body: Any) -> str | None:
    """The order a webhook is about: `data.id` of an order scope, `data.orderId` of a
    shipment scope; None for other scopes."""
    scope, data = str(body.get("scope") or ""), body.get("data") or {}
    if scope.startswith("store/order/"):
        value = data.get("id")
    elif scope.startswith("store/shipment/"):
        value = data.get("orderId", data.get("order_id"))
    else:
        return None
    return str(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reset_seconds(status: int, headers: Mapping[str, str]) -> float | None:
    reset = _int(headers.get("X-Rate-Limit-Time-Reset-Ms"))
    return None if reset is None else reset / 1000


def _message(body: Any) -> str:
    """BigCommerce's v2 errors are a list of {status, message}; v3 {title, detail}."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return "; ".join(str(e.get("message") or e) for e in body)[:300]
    if isinstance(body, dict):
        return str(body.get("title") or body.get("message") or body)[:300]
    return str(body)[:300] if body is not None else ""
