"""The Shopify connector: a store on either side of a marketplace channel, through the GraphQL
Admin API (stores.md: REST is legacy; new public apps are GraphQL-only).

`base_url` is the shop (`https://{shop}.myshopify.com`); `X-Shopify-Access-Token` from the
environment. Seller side: the FO is created as an order (`orderCreate`, `sourceIdentifier` =
the FO id, so a retry finds it); its fulfilments come back with the order in one read (SUCCESS
shipped, CANCELLED voided). Buyer side: each shipment allocated becomes a fulfilment on the
order's fulfilment-order line items (`fulfillmentCreate`, several tracking numbers in one);
a void cancels it (`fulfillmentCancel`); Shopify marks the order fulfilled itself once nothing
remains. `userErrors` arrive with HTTP 200 and are errors all the same. Cost-based throttling:
`extensions.cost.throttleStatus` is read after every call (below `low_water_points` the next
call waits for the bucket to refill) and THROTTLED is waited out. Webhooks: base64
HMAC-SHA256 of the raw body with the app's client secret, de-duplicated on
X-Shopify-Webhook-Id; the order is then read again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from connectors.marketplace.base import StoreConnector, common_options, credential_options
from connectors.shopify import normalize, queries
from connectors.shopify.normalize import nodes
from gateway import logs
from gateway.config import Config, ConnectorConfig
from gateway.connector import Option, WebhookRequest
from gateway.domain.records import PartnerOrder, Shipment
from gateway.errors import BadRequest, PartnerRateLimited, PartnerRejected, WebhookRejected
from gateway.metrics import Metrics
from storage import NewInboxEvent, OutboxMessage

log = logs.get("connectors.shopify")
SANDBOX_TOKEN, SANDBOX_CLIENT_SECRET = "shpat_sandbox", "sandbox-shopify-client-secret"
SANDBOX_ABOUT = f"""\
A Shopify store stand-in: the GraphQL Admin endpoint (/admin/api/2025-01/graphql.json), its
queries validated by graphql-core against the schema subset in connectors/shopify/
schema.graphql; orders, fulfilment orders and fulfilments with userErrors on HTTP 200; the cost
bucket and THROTTLED; webhooks signed with the client secret.

Credentials: $SHOPIFY_TOKEN and $SHOPIFY_CLIENT_SECRET, or {SANDBOX_TOKEN} /
{SANDBOX_CLIENT_SECRET} when unset.

Control routes (no auth):
  POST /_sandbox/orders                   a customer's order {{lines: [{{sku, quantity}}]}}
  POST /_sandbox/orders/N/fulfill         the merchant fulfils {{items: [{{sku, quantity}}],
                                          numbers: [...], company, url}}
  POST /_sandbox/fulfillments/N/cancel    the merchant cancels a fulfilment
  POST /_sandbox/orders/N/cancel          the order is cancelled
  POST /_sandbox/hooks {{"url"}}, POST /_sandbox/faults, GET /_sandbox/state, /_sandbox/requests
"""
# Topics acted on: an order's own, and its fulfilments'; others are acknowledged, not stored.
TOPICS = frozenset({"orders/create", "orders/updated", "orders/cancelled", "orders/fulfilled",
                    "orders/partially_fulfilled", "fulfillments/create",
                    "fulfillments/update"})
PAGE = 100


class ShopifyConnector(StoreConnector):
    platform = "shopify"
    default_reference_field = "sourceIdentifier"  # by_reference (UNCONFIRMED)
    version_field = "updatedAt"
    rules = normalize
    options: ClassVar[tuple[Option, ...]] = (
        *credential_options("variable holding the Admin API access token"),
        Option("api_version", str, "2025-01", help="the Admin API version in the path"),
        *common_options(),
        Option("notify_customer", bool, True,
               help="buyer side: Shopify emails the customer each fulfilment"),
        Option("requests_per_second", int, 10, minimum=1, maximum=1000,
               help="calls a second across every replica (the cost bucket is read as well)"),
        Option("low_water_points", float, 100.0, minimum=0.0,
               help="below this many points left, the next call waits for the bucket"),
    )
    sandbox_port = 8084
    sandbox_about = SANDBOX_ABOUT

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        s = self.settings
        self.budget = self.rate_budget(s["requests_per_second"], 1.0)
        self.path = f"/admin/api/{s['api_version']}/graphql.json"
        self.client = self.store_client(
            {"X-Shopify-Access-Token": app_config.secret(s["access_token_env"])}, self.budget)
        self._secret = app_config.secret(s["client_secret_env"]).encode()
        self.throttle: dict[str, Any] = {}

    def status(self) -> dict[str, Any]:
        return {**self.budget.state(), "cost_bucket": dict(self.throttle)}

    async def graphql(self, query: str, variables: Mapping[str, Any],
                      background: bool = False) -> dict[str, Any]:
        """One GraphQL call: its data. THROTTLED waited out (as long as the bucket needs to
        hold the call's cost); any other error raised (an invalid document is a bug here,
        not at Shopify: rejected, not retried)."""
        for _ in range(self.settings["max_rate_limit_waits"] + 1):
            answer = await self.client.call("POST", self.path, background=background,
                                            body={"query": query, "variables": dict(variables)})
            body = answer.body if isinstance(answer.body, dict) else {}
            cost = (body.get("extensions") or {}).get("cost") or {}
            status = cost.get("throttleStatus") or {}
            self.throttle = status
            errors = body.get("errors")
            if isinstance(errors, list) and any(
                    isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
                    for e in errors):
                wait = _refill_seconds(status, float(cost.get("requestedQueryCost") or 1))
                log.info("shopify.throttled", connector=self.name, wait_seconds=wait)
                self.metrics.partner_429.labels(self.name).inc()
                self.budget.limited(wait)
                continue
            if errors:
                raise PartnerRejected(f"Shopify GraphQL: {_messages(errors)}")
            if status and float(status.get("currentlyAvailable", 1e9)) < \
                    self.settings["low_water_points"]:
                self.budget.pause(_refill_seconds(status, self.settings["low_water_points"]))
            return body.get("data") or {}
        raise PartnerRateLimited("Shopify GraphQL: still throttled", retry_after=2.0)

    # webhooks

    def verify(self, request: WebhookRequest) -> str | None:
        given = request.headers.get("X-Shopify-Hmac-Sha256", "")
        expected = base64.b64encode(hmac.new(self._secret, request.body,
                                             hashlib.sha256).digest()).decode()
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRejected("X-Shopify-Hmac-Sha256 missing or wrong")
        if request.headers.get("X-Shopify-Topic") not in TOPICS:
            return None
        body = request.json()
        if not isinstance(body, dict) or not (
                isinstance(body.get("admin_graphql_api_id"), str)
                or isinstance(body.get("order_id"), int)):
            raise BadRequest("not a Shopify order or fulfilment webhook (expected"
                             " admin_graphql_api_id or order_id)")
        delivery = (request.headers.get("X-Shopify-Webhook-Id")
                    or request.headers.get("X-Shopify-Event-Id")
                    or hashlib.sha256(request.body).hexdigest())
        return f"webhook:{delivery}"

    async def normalize_webhook(self, body: Any, headers: Mapping[str, str],
                                at: str) -> list[Any]:
        order_id = f"gid://shopify/Order/{body['order_id']}" if "order_id" in body \
            else body["admin_graphql_api_id"]
        order = (await self.graphql(queries.ORDER, {"id": order_id})).get("order")
        return await self.records_of_order(order, at) if order else []

    # polling

    async def updated_orders(self, since: str, until: str, buyer: bool) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = None
        while True:
            data = await self.graphql(queries.ORDERS, {
                "first": PAGE, "after": after,
                "query": queries.updated_between(since, until)}, background=True)
            connection = data.get("orders") or {}
            found.extend(o for o in nodes(connection)
                         if since <= normalize.timestamp(o.get("updatedAt"), since) <= until)
            page = connection.get("pageInfo") or {}
            if not page.get("hasNextPage") or not page.get("endCursor"):
                return found
            after = page["endCursor"]

    async def fulfilment_event(self, order: Mapping[str, Any]) -> NewInboxEvent:
        return self.fulfilment_body({"order_id": str(order["id"]), "order": dict(order),
                                     "summary": {"name": order.get("name"),
                                                 "updatedAt": order.get("updatedAt")}})

    def partner_order(self, order: Mapping[str, Any], at: str) -> PartnerOrder:
        return normalize.partner_order(self.name, order, at)

    def shipments(self, detail: Mapping[str, Any], at: str) -> list[Shipment]:
        return normalize.shipments(self.name, detail["order"], at)

    # operations: seller side

    async def push_order(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        fo_id = p["fulfillment_order_id"]
        ship_to = p.get("ship_to") or {}
        first, _, last = str(ship_to.get("name") or "").partition(" ")
        address = {"firstName": first or None, "lastName": last or None,
                   "company": ship_to.get("company"), "address1": ship_to.get("street1"),
                   "address2": ship_to.get("street2"), "city": ship_to.get("city"),
                   "provinceCode": ship_to.get("state"), "zip": ship_to.get("postal_code"),
                   "countryCode": ship_to.get("country"), "phone": ship_to.get("phone")}
        order = {"lineItems": [{"sku": ln["sku"], "title": ln["sku"], "quantity": ln["quantity"],
                                "requiresShipping": True,
                                "priceSet": {"shopMoney": {"amount": "0.00",
                                                           "currencyCode": "USD"}}}
                               for ln in p["lines"]],
                 "shippingAddress": {k: v for k, v in address.items() if v},
                 "sourceIdentifier": fo_id, "sourceName": "fulfillment-gateway",
                 "note": f"order {p.get('order_number') or fo_id} via the gateway",
                 **p.get("partner_fields", {})}
        data = await self.graphql(queries.ORDER_CREATE, {
            "order": order, "options": {"inventoryBehaviour": "BYPASS", "sendReceipt": False}})
        result = data.get("orderCreate") or {}
        _raise_user_errors("orderCreate", result.get("userErrors"))
        return {"partner_order_id": result["order"]["id"], "name": result["order"]["name"]}

    def placed_for(self, order: Mapping[str, Any]) -> Any:
        return order.get("sourceIdentifier")

    async def cancel_placed(self, order_id: str) -> None:
        data = await self.graphql(queries.ORDER_CANCEL, {"orderId": order_id})
        _raise_user_errors("orderCancel", (data.get("orderCancel") or {}).get(
            "orderCancelUserErrors"))

    # operations: buyer side

    async def push_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        if p.get("type") == "status_changed":
            return {"skipped": "Shopify sets the order's fulfilment status itself"}
        order = (await self.graphql(queries.ORDER, {"id": p["partner_order_id"]})).get("order")
        if order is None:
            raise PartnerRejected(f"Shopify order {p['partner_order_id']} does not exist")
        shipment = p.get("shipment") or {}
        numbers = list(dict.fromkeys(shipment.get("tracking_numbers") or []))
        for f in order.get("fulfillments") or []:  # made before an answer was lost
            if numbers and f.get("status") == "SUCCESS" and sorted(
                    t.get("number") for t in f.get("trackingInfo") or []) == sorted(numbers):
                return {"partner_fulfillment_id": f["id"], "repeated": True}
        wanted = {str(ln["line_id"]): int(ln["quantity"]) for ln in p["lines"]}
        groups: dict[str, list[dict[str, Any]]] = {}
        for fo in nodes(order.get("fulfillmentOrders")):
            if fo.get("status") not in ("OPEN", "IN_PROGRESS"):
                continue
            for item in nodes(fo.get("lineItems")):
                line_id = item["lineItem"]["id"]
                take = min(wanted.get(line_id, 0), int(item["remainingQuantity"]))
                if take > 0:
                    groups.setdefault(fo["id"], []).append({"id": item["id"], "quantity": take})
                    wanted[line_id] -= take
        short = {k: v for k, v in wanted.items() if v > 0}
        if short:
            raise PartnerRejected(f"Shopify order {order.get('name')}: more than remains to"
                                  f" fulfil of line item(s) {', '.join(short)}")
        tracking: dict[str, Any] = {"company": shipment.get("carrier")}
        if numbers:
            tracking["numbers"] = numbers
            if shipment.get("tracking_url"):
                tracking["urls"] = [shipment["tracking_url"]]
        made = []
        for fo_id, items in groups.items():  # one call per fulfilment order (its location)
            data = await self.graphql(queries.FULFILLMENT_CREATE, {"fulfillment": {
                "lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo_id,
                                                 "fulfillmentOrderLineItems": items}],
                "notifyCustomer": self.settings["notify_customer"], "trackingInfo": tracking}})
            result = data.get("fulfillmentCreate") or {}
            _raise_user_errors("fulfillmentCreate", result.get("userErrors"))
            made.append(result["fulfillment"]["id"])
        return {"partner_fulfillment_id": ",".join(made)}

    async def cancel_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        ids = [i for i in str(p.get("partner_fulfillment_id") or "").split(",") if i]
        for fulfillment_id in ids:
            data = await self.graphql(queries.FULFILLMENT_CANCEL, {"id": fulfillment_id})
            result = data.get("fulfillmentCancel") or {}
            errors = result.get("userErrors") or []
            if errors and (result.get("fulfillment") or {}).get("status") != "CANCELLED":
                _raise_user_errors("fulfillmentCancel", errors)
        return {"cancelled": True, "partner_fulfillment_id": ",".join(ids)}

    @classmethod
    async def demo(cls, ctx: Any) -> None:
        from connectors.shopify.demo import run

        await run(ctx)

    # sandboxes

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.shopify.sandbox import create_app

        s = config.settings
        return create_app(app_config.secret(s["access_token_env"]),
                          app_config.secret(s["client_secret_env"]), s["api_version"])

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.shopify.sandbox import create_app

        return create_app(os.environ.get("SHOPIFY_TOKEN", SANDBOX_TOKEN),
                          os.environ.get("SHOPIFY_CLIENT_SECRET", SANDBOX_CLIENT_SECRET))


def _raise_user_errors(call: str, errors: Any) -> None:
    """userErrors come with HTTP 200: an error all the same, and not one a retry fixes."""
    if errors:
        raise PartnerRejected(f"Shopify {call}: {_messages(errors)}")


def _messages(errors: Any) -> str:
    if isinstance(errors, list):
        return "; ".join(str(e.get("message") if isinstance(e, dict) else e)
                         for e in errors)[:300]
    return str(errors)[:300]


def _refill_seconds(status: Mapping[str, Any], points: float) -> float:
    """How long the bucket takes to hold `points` again."""
    available = float(status.get("currentlyAvailable") or 0)
    restore = float(status.get("restoreRate") or 50) or 50.0
    return max(0.0, (points - available) / restore)

