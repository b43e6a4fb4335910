"""The WooCommerce connector: a store on either side of a marketplace channel (REST wc/v3 and
the Shipment Tracking extension's endpoints; stores.md).

`base_url` is the site (`https://{site}`; the API under `/wp-json/`); consumer key and secret
from the environment, as HTTP Basic (`auth = "basic"`, over HTTPS) or as query parameters
(`auth = "query"`, for servers that strip the Authorization header). Seller side: the FO is
created as a processing order (each SKU's product looked up once; the FO id in its meta, so a
retry finds it); its fulfilments come from the tracking meta (see normalize.py). Buyer side:
each shipment allocated becomes one tracking item per number (`tracking = "shipment_tracking"`,
the extension), or a customer note where the extension is absent (`tracking =
"order_notes"`); a void deletes them; the FO fulfilled sets the order `completed`. Webhooks
carry the whole order, signed (base64 HMAC-SHA256 of the body with the webhook's secret in
X-WC-Webhook-Signature), so nothing is read again. WooCommerce core has no rate limit; a host's
429 is waited out by its Retry-After.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
from aiohttp import web
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, SIGNATURE_TYPE_QUERY, Client

from connectors.marketplace.base import StoreConnector, common_options
from connectors.woocommerce import normalize
from gateway.config import Config, ConnectorConfig
from gateway.connector import Option, WebhookRequest
from gateway.domain.records import PartnerOrder, Shipment, now_iso
from gateway.errors import BadRequest, PartnerRejected, WebhookRejected
from gateway.metrics import Metrics
from storage import NewInboxEvent, OutboxMessage

SANDBOX_KEY, SANDBOX_SECRET = "ck_sandbox", "cs_sandbox"
SANDBOX_WEBHOOK_SECRET = "sandbox-woo-webhook-secret"
SANDBOX_ABOUT = f"""\
A WooCommerce site stand-in: wc/v3 orders (statuses, line items, meta_data, the
modified_after/_before listing with X-WP-Total and X-WP-TotalPages), products by SKU, order
notes, the Shipment Tracking extension's shipment-trackings endpoints (kept in the order's
_wc_shipment_tracking_items meta), webhooks signed with the webhook secret.

Credentials: $WOOCOMMERCE_KEY / $WOOCOMMERCE_SECRET (HTTP Basic or ?consumer_key=&
consumer_secret=) and $WOOCOMMERCE_WEBHOOK_SECRET, or {SANDBOX_KEY} / {SANDBOX_SECRET} /
{SANDBOX_WEBHOOK_SECRET} when unset.

Control routes (no auth):
  POST /_sandbox/products         {{"sku", "name"}}
  POST /_sandbox/orders           a customer's order {{lines: [{{sku, quantity}}]}}
  POST /_sandbox/orders/ID/track  the seller adds a tracking item {{tracking_number,
                                  tracking_provider, products_list?}}
  POST /_sandbox/orders/ID/untrack/TID, /_sandbox/orders/ID/status {{"status"}}
  POST /_sandbox/hooks, /_sandbox/faults; GET /_sandbox/state, /_sandbox/requests
"""
TOPICS = frozenset({"order.created", "order.updated", "order.deleted", "order.restored"})
PAGE = 100
TRACKING = "/wp-json/wc-shipment-tracking/v3/orders"


class WooCommerceConnector(StoreConnector):
    platform = "woocommerce"
    default_reference_field = "meta:_order_number"  # by_reference (UNCONFIRMED)
    version_field = "date_modified_gmt"
    rules = normalize
    options: ClassVar[tuple[Option, ...]] = (
        Option("consumer_key_env", str, help="variable holding the consumer key (ck_...)"),
        Option("consumer_secret_env", str, help="variable holding the consumer secret (cs_...)"),
        Option("webhook_secret_env", str, help="variable holding the webhooks' secret"),
        Option("auth", str, "basic", choices=("basic", "query", "oauth1"),
               help="HTTP Basic (HTTPS), the key and secret as query parameters (HTTPS, a"
                    " server that strips Authorization), or OAuth 1.0a one-legged (plain"
                    " HTTP)"),
        Option("tracking", str, "shipment_tracking", choices=("shipment_tracking", "order_notes"),
               help="buyer side: tracking items of the extension, or customer notes"),
        *common_options(),
        Option("requests_per_second", int, 10, minimum=1, maximum=1000,
               help="calls a second across every replica (core WooCommerce has no limit)"),
    )
    sandbox_port = 8085
    sandbox_about = SANDBOX_ABOUT

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        s = self.settings
        key, secret = app_config.secret(s["consumer_key_env"]), \
            app_config.secret(s["consumer_secret_env"])
        self._query = {"consumer_key": key, "consumer_secret": secret} \
            if s["auth"] == "query" else {}
        self._oauth = Client(key, client_secret=secret, signature_method=SIGNATURE_HMAC_SHA256,
                             signature_type=SIGNATURE_TYPE_QUERY) if s["auth"] == "oauth1" \
            else None
        headers = {} if self._query or self._oauth else {
            "Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}
        self.budget = self.rate_budget(s["requests_per_second"], 1.0)
        self.client = self.store_client(headers, self.budget, message=_message)
        self._webhook_secret = app_config.secret(s["webhook_secret_env"]).encode()
        self._products: dict[str, int] = {}  # SKU -> product id, as looked up

    def status(self) -> dict[str, Any]:
        return self.budget.state()

    async def _call(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                    body: Any = None, background: bool = False,
                    accept: tuple[int, ...] = ()) -> Any:
        query = {**{k: str(v) for k, v in (params or {}).items()}, **self._query}
        if self._oauth is not None:
            query = self._signed(method, path, query)
        return await self.client.call(method, path, query, body, background=background,
                                      accept=accept)

    def _signed(self, method: str, path: str, query: Mapping[str, str]) -> dict[str, str]:
        """One-legged OAuth 1.0a over plain HTTP, as WooCommerce takes it: HMAC-SHA256 over
        the method, the URL and every query parameter, the oauth_* ones added to the query
        (a JSON body is not signed)."""
        assert self._oauth is not None
        url = f"{self.client.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
        signed, _, _ = self._oauth.sign(url, method)
        return dict(parse_qsl(urlsplit(signed).query, keep_blank_values=True))

    # webhooks

    def verify(self, request: WebhookRequest) -> str | None:
        given = request.headers.get("X-WC-Webhook-Signature", "")
        expected = base64.b64encode(hmac.new(self._webhook_secret, request.body,
                                             hashlib.sha256).digest()).decode()
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRejected("X-WC-Webhook-Signature missing or wrong")
        if request.headers.get("X-WC-Webhook-Topic") not in TOPICS:
            return None  # the ping sent when a webhook is saved, or another resource
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            raise BadRequest("not a WooCommerce order webhook (expected the order)")
        delivery = request.headers.get("X-WC-Webhook-Delivery-ID") or \
            hashlib.sha256(request.body).hexdigest()
        return f"webhook:{request.headers.get('X-WC-Webhook-ID', '')}:{delivery}"

    async def normalize_webhook(self, body: Any, headers: Mapping[str, str],
                                at: str) -> list[Any]:
        return await self.records_of_order(body, at)  # the whole order came with it

    # polling

    async def updated_orders(self, since: str, until: str, buyer: bool) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self._call("GET", "/wp-json/wc/v3/orders", {
                "modified_after": since[:19], "modified_before": until[:19],
                "dates_are_gmt": "true", "per_page": PAGE, "page": page, "orderby": "modified",
                "order": "asc"}, background=True)
            found.extend(o for o in answer.body or [] if isinstance(o, dict))
            pages = int(answer.headers.get("X-WP-TotalPages") or 1)
            if page >= pages or not answer.body:
                return [o for o in found if not buyer or self.takes(o)]
            page += 1

    async def fulfilment_event(self, order: Mapping[str, Any]) -> NewInboxEvent:
        return self.fulfilment_body({"order_id": str(order["id"]), "order": dict(order),
                                     "summary": {"status": order.get("status"),
                                                 "date_modified_gmt":
                                                     order.get("date_modified_gmt")}})

    def partner_order(self, order: Mapping[str, Any], at: str) -> PartnerOrder:
        return normalize.partner_order(self.name, order, at)

    def shipments(self, detail: Mapping[str, Any], at: str) -> list[Shipment]:
        return normalize.shipments(self.name, detail["order"], at)

    # operations: seller side

    async def _product_id(self, sku: str) -> int:
        if sku not in self._products:
            found = (await self._call("GET", "/wp-json/wc/v3/products", {"sku": sku})).body
            if not found:
                raise PartnerRejected(f"WooCommerce has no product with SKU {sku!r}")
            self._products[sku] = int(found[0]["id"])
        return self._products[sku]

    async def push_order(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        fo_id = p["fulfillment_order_id"]
        ship_to = p.get("ship_to") or {}
        first, _, last = str(ship_to.get("name") or "").partition(" ")
        shipping = {"first_name": first, "last_name": last, "company": ship_to.get("company")
                    or "", "address_1": ship_to.get("street1") or "",
                    "address_2": ship_to.get("street2") or "", "city": ship_to.get("city") or "",
                    "state": ship_to.get("state") or "",
                    "postcode": ship_to.get("postal_code") or "",
                    "country": ship_to.get("country") or ""}
        body = {"status": "processing", "set_paid": True, "shipping": shipping,
                "line_items": [{"product_id": await self._product_id(ln["sku"]),
                                "quantity": ln["quantity"]} for ln in p["lines"]],
                "meta_data": [{"key": normalize.FO_META, "value": fo_id}],
                "customer_note": f"order {p.get('order_number') or fo_id} via the gateway",
                **p.get("partner_fields", {})}
        created = (await self._call("POST", "/wp-json/wc/v3/orders", body=body)).body
        return {"partner_order_id": str(created["id"])}

    def placed_for(self, order: Mapping[str, Any]) -> Any:
        return normalize.meta(order, normalize.FO_META)

    async def cancel_placed(self, order_id: str) -> None:
        await self._call("PUT", f"/wp-json/wc/v3/orders/{order_id}", body={"status": "cancelled"})

    # operations: buyer side

    async def push_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        order_id = p["partner_order_id"]
        if p.get("type") == "status_changed":
            if p.get("new_status") != "fulfilled":
                return {"skipped": f"no WooCommerce status for {p.get('new_status')}"}
            await self._call("PUT", f"/wp-json/wc/v3/orders/{order_id}",
                             body={"status": "completed"})
            return {"status": "completed"}
        shipment = p.get("shipment") or {}
        numbers = list(dict.fromkeys(shipment.get("tracking_numbers") or [])) or [""]
        if self.settings["tracking"] == "order_notes":
            return await self._note(order_id, p, shipment, numbers)
        existing = (await self._call("GET", f"{TRACKING}/{order_id}/shipment-trackings")).body
        have = {str(t.get("tracking_number")): str(t["tracking_id"]) for t in existing or []}
        made = []
        carrier = shipment.get("carrier") or "Other"
        for number in numbers:
            if number in have:  # added before an answer was lost
                made.append(have[number])
                continue
            item = {"tracking_number": number,
                    "date_shipped": (shipment.get("shipped_at") or now_iso())[:10]}
            if shipment.get("tracking_url") and len(numbers) == 1:
                item.update(custom_tracking_provider=carrier,
                            custom_tracking_link=shipment["tracking_url"])
            else:
                item["tracking_provider"] = carrier
            created = (await self._call("POST", f"{TRACKING}/{order_id}/shipment-trackings",
                                        body=item)).body
            made.append(str(created["tracking_id"]))
        return {"partner_fulfillment_id": ",".join(made)}

    async def _note(self, order_id: str, p: Mapping[str, Any], shipment: Mapping[str, Any],
                    numbers: list[str]) -> dict[str, Any]:
        """The fallback without the extension: a customer note naming the items and parcels
        (WooCommerce emails it to the customer)."""
        key = f"[{p['fulfillment_order_id']}:{p['shipment_id']}]"
        notes = (await self._call("GET", f"/wp-json/wc/v3/orders/{order_id}/notes")).body
        found = next((n for n in notes or [] if key in str(n.get("note"))), None)
        if found is None:
            items = ", ".join(f"{ln['quantity']} x {ln['sku']}" for ln in p["lines"])
            text = (f"Shipped {items} with {shipment.get('carrier') or 'the carrier'},"
                    f" tracking {', '.join(n for n in numbers if n) or 'none'}"
                    f"{' ' + shipment['tracking_url'] if shipment.get('tracking_url') else ''}"
                    f" {key}")
            found = (await self._call("POST", f"/wp-json/wc/v3/orders/{order_id}/notes",
                                      body={"note": text, "customer_note": True})).body
        return {"partner_fulfillment_id": f"note:{found['id']}"}

    async def cancel_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        p = message.payload
        order_id = p["partner_order_id"]
        ids = [i for i in str(p.get("partner_fulfillment_id") or "").split(",") if i]
        for fulfilment_id in ids:
            if fulfilment_id.startswith("note:"):
                # an emailed note cannot be unsent: say so to the customer, then remove it
                await self._call("POST", f"/wp-json/wc/v3/orders/{order_id}/notes", body={
                    "note": "A parcel notified before was withdrawn; its replacement follows.",
                    "customer_note": True})
                await self._call("DELETE", f"/wp-json/wc/v3/orders/{order_id}/notes/"
                                 f"{fulfilment_id[5:]}", {"force": "true"}, accept=(404,))
            else:
                await self._call("DELETE", f"{TRACKING}/{order_id}/shipment-trackings/"
                                 f"{fulfilment_id}", accept=(404,))
        return {"cancelled": True, "partner_fulfillment_id": ",".join(ids)}

    # demos and sandboxes

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.woocommerce.sandbox import create_app

        s = config.settings
        return create_app(app_config.secret(s["consumer_key_env"]),
                          app_config.secret(s["consumer_secret_env"]),
                          app_config.secret(s["webhook_secret_env"]))

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.woocommerce.sandbox import create_app

        return create_app(os.environ.get("WOOCOMMERCE_KEY", SANDBOX_KEY),
                          os.environ.get("WOOCOMMERCE_SECRET", SANDBOX_SECRET),
                          os.environ.get("WOOCOMMERCE_WEBHOOK_SECRET", SANDBOX_WEBHOOK_SECRET))



def _message(body: Any) -> str:
    """WooCommerce's errors: {code, message, data: {status}}."""
    if isinstance(body, dict):
        return f"{body.get('code', '')}: {body.get('message', '')}".strip(": ")[:300]
    return str(body)[:300] if body is not None else ""
