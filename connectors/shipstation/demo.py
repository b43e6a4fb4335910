"""The demo scenario against the ShipStation sandbox: one FO of 10 units, split 6 + 4.

The FO is created for the first channel that pushes to this connector; the gateway pushes it
after the channel's delay (the FO id as `orderKey`, the custom fields under ShipStation's
names). The sandbox splits it into child orders 1001-1 and 1001-2, ships them a few seconds
apart, and tells the gateway by SHIP_NOTIFY webhook, as ShipStation does. Without such a
channel the order is placed in the sandbox directly, as the push would place it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from connectors.shipstation.client import basic_auth
from gateway.connector import DemoContext

SKU = "TSHIRT-BLK-M"
DEMO_FIELDS = {"shipping_notes": "Deliver to dock 4", "shipping_type": "LTL"}
PAUSE_SECONDS = 3.0


async def _wait_for_status(ctx: DemoContext, fo_id: str, wanted: str, seen: list[str],
                           within_seconds: float = 30.0) -> dict:
    headers = {"Authorization": f"Bearer {ctx.api_token}"}
    deadline = time.monotonic() + within_seconds
    while True:
        async with ctx.session.get(f"{ctx.api_url}/api/v1/fulfillment-orders/{fo_id}",
                                   headers=headers) as resp:
            fo = await resp.json()
        if not seen or seen[-1] != fo["status"]:
            seen.append(fo["status"])
            line = fo["lines"][0]
            ctx.say(f"  FO {fo_id}: {fo['status']:<20} {line['fulfilled']}/{line['requested']}"
                    f" shipped (the FO still requests {line['requested']})")
        if fo["status"] == wanted:
            return fo
        if time.monotonic() > deadline:
            raise TimeoutError(f"FO {fo_id} did not reach {wanted} in {within_seconds} s")
        await asyncio.sleep(0.1)


async def _wait_for_push(ctx: DemoContext, fo_id: str, within_seconds: float = 60.0) -> int:
    headers = {"Authorization": f"Bearer {ctx.api_token}"}
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        async with ctx.session.get(f"{ctx.api_url}/api/v1/fulfillment-orders/{fo_id}",
                                   headers=headers) as resp:
            fo = await resp.json()
        for push in fo["outbound"]:
            if push["kind"] == "push_order" and push["status"] == "sent":
                return int(push["result"]["partner_order_id"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"FO {fo_id} was not pushed in {within_seconds} s")


def _get_path(body: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


async def ship_in_parts(ctx: DemoContext, order_id: int,
                        parts: Sequence[Sequence[tuple[str, int]]],
                        after_each: Callable[[dict[str, Any]], Awaitable[None]] | None = None
                        ) -> list[dict[str, Any]]:
    """Play the 3PL: split a placed order into parts and ship them a few seconds apart, each
    told to the gateway by SHIP_NOTIFY (the gateway's webhook registered first, once)."""
    base = ctx.connector.base_url
    token = ctx.app_config.secret(ctx.connector.settings["webhook_token_env"])
    target = f"{ctx.webhook_url}?token={token}"
    async with ctx.session.get(f"{base}/webhooks", headers=_auth(ctx)) as resp:
        hooks = (await resp.json())["webhooks"]
    if not any(h["Url"] == target and h["HookType"] == "SHIP_NOTIFY" for h in hooks):
        async with ctx.session.post(f"{base}/webhooks/subscribe", headers=_auth(ctx), json={
                "target_url": target, "event": "SHIP_NOTIFY",
                "friendly_name": "fulfillment gateway demo"}) as resp:
            resp.raise_for_status()
        ctx.say(f"Registered the gateway's webhook with the ShipStation sandbox at {base}")
    async with ctx.session.post(f"{base}/_sandbox/orders/{order_id}/split", json={
            "parts": [[{"sku": sku, "quantity": qty} for sku, qty in part]
                      for part in parts]}) as resp:
        children = (await resp.json())["orders"]
    ctx.say("The 3PL split the order into "
            + " and ".join(f"{c['orderNumber']} ({sum(i['quantity'] for i in c['items'])}"
                           " units)" for c in children))
    shipments = []
    for child in children:
        await asyncio.sleep(PAUSE_SECONDS)
        async with ctx.session.post(f"{base}/_sandbox/orders/{child['orderId']}/ship",
                                    json={}) as resp:
            shipment = (await resp.json())["shipment"]
        ctx.say(f"ShipStation shipped {child['orderNumber']} (label {shipment['shipmentId']},"
                f" tracking {shipment.get('trackingNumber')}) and sent SHIP_NOTIFY")
        shipments.append(shipment)
        if after_each is not None:
            await after_each(shipment)
    return shipments


def _auth(ctx: DemoContext) -> dict[str, str]:
    return {"Authorization": basic_auth(
        ctx.app_config.secret(ctx.connector.settings["api_key_env"]),
        ctx.app_config.secret(ctx.connector.settings["api_secret_env"]))}


async def run(ctx: DemoContext) -> None:
    base = ctx.connector.base_url
    auth = _auth(ctx)
    api = {"Authorization": f"Bearer {ctx.api_token}"}

    channel = next((c for c in ctx.app_config.channels
                    if c.oms and c.oms.connector == ctx.connector.name), None)
    custom = {name: DEMO_FIELDS.get(name, f"demo {name}")
              for name in (channel.custom_fields if channel else {})}
    async with ctx.session.post(f"{ctx.api_url}/api/v1/fulfillment-orders", headers=api, json={
            "channel": channel.name if channel else "wholesale", "order_number": "1001",
            "lines": [{"sku": SKU, "quantity": 10}], "custom_fields": custom,
            "ship_to": {"name": "Demo Buyer", "city": "Portland", "country": "US"}}) as resp:
        resp.raise_for_status()
        fo = await resp.json()
    fo_id = fo["id"]
    ctx.say(f"Created FO {fo_id} through the API: order 1001, 10 x {SKU}")
    seen: list[str] = []
    await _wait_for_status(ctx, fo_id, "unfulfilled", seen)

    if channel and channel.oms:
        ctx.say(f"Channel {channel.name!r} pushes it to ShipStation after"
                f" {channel.oms.delay_minutes * 60:.0f} s (config.toml: 15 minutes, so a rep"
                " can still cancel)")
        order_id = await _wait_for_push(ctx, fo_id)
        async with ctx.session.get(f"{base}/orders/{order_id}", headers=auth) as resp:
            order = await resp.json()
        shown = {target: _get_path(order, target) for target in channel.custom_fields.values()}
        ctx.say(f"Pushed: ShipStation order {order_id} with orderKey {order['orderKey']} and "
                + ", ".join(f"{k}={v!r}" for k, v in shown.items()))
    else:
        async with ctx.session.post(f"{base}/_sandbox/orders", json={
                "orderKey": fo_id, "orderNumber": "1001",
                "items": [{"lineItemKey": "1", "sku": SKU, "name": "T-shirt", "quantity": 10}],
                "shipTo": {"name": "Demo Buyer", "city": "Portland", "country": "US"}}) as resp:
            order = await resp.json()
    wanted = iter(("partially_fulfilled", "fulfilled"))

    async def shipped(_: dict[str, Any]) -> None:
        await _wait_for_status(ctx, fo_id, next(wanted), seen)

    await ship_in_parts(ctx, order["orderId"], [[(SKU, 6)], [(SKU, 4)]], shipped)
    ctx.say(f"Done: FO {fo_id} went {' -> '.join(seen)}.")
    ctx.say(f"  curl -H 'Authorization: Bearer {ctx.api_token}' "
            f"{ctx.api_url}/api/v1/fulfillment-orders/{fo_id}")
