"""The demo's marketplace act, Shopify as the buyer's store: a customer's order of 3 items is
placed with the seller's store (the channel's OMS, e.g. BigCommerce), fulfilled there in two
parts; the Shopify sandbox shows both fulfilments with tracking and the order fulfilled;
polling stops; then the seller corrects a tracking number (cancel and fulfil again) and the
buyer's Shopify shows the correction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.connector import DemoContext, connector_class


async def run(ctx: DemoContext) -> None:
    name = ctx.connector.name

    channel = next((c for c in ctx.app_config.channels if c.source_connector == name), None)
    if channel is None or channel.oms is None:
        ctx.say(f"[{name}] no channel takes {name}'s orders to a seller's store: nothing to"
                " show")
        return
    seller = next(c for c in ctx.app_config.connectors if c.name == channel.oms.connector)
    seller_ctx = replace(ctx, connector=seller,
                         webhook_url=f"{ctx.api_url}/webhooks/{seller.name}")
    ctx.say("")
    ctx.say(f"Marketplace act: a buyer's order in {name} (Shopify) fulfilled by the seller's"
            f" store {seller.name} ({seller.type}), through channel {channel.name!r}")
    await ctx.sandbox("/hooks", {"url": ctx.webhook_url})
    order = await ctx.sandbox("/orders", {"lines": [{"sku": "MUG", "quantity": 2,
                                                 "title": "Stoneware mug"},
                                                {"sku": "TEE", "quantity": 1,
                                                 "title": "Organic tee"}]})
    number = order["id"].rsplit("/", 1)[1]
    ctx.say(f"  Shopify: customer order {order['name']} for 2 x MUG, 1 x TEE (webhook"
            " orders/create, signed)")

    async def taken() -> Any:
        items = (await ctx.api("GET", f"/api/v1/partner-orders?connector={name}"))["items"]
        return next((o["fulfillment_order_id"] for o in items
                     if o["id"] == order["id"] and o["fulfillment_order_id"]), None)

    fo_id = await ctx.until(taken, "the FO")
    ctx.say(f"  Gateway: FO {fo_id}, origin {name} order {order['name']}")

    async def placed() -> Any:
        fo = await ctx.api("GET", f"/api/v1/fulfillment-orders/{fo_id}")
        return next((ln["partner_order_id"] for ln in fo["links"]
                     if ln["role"] == "fulfiller" and ln["partner_order_id"]), None)

    seller_order = str(await ctx.until(placed, "the push to the seller"))
    ctx.say(f"  Gateway: placed with {seller.name} as its order {seller_order}")
    made = await connector_class(seller).demo_ship(seller_ctx, seller_order,
                                                   [[("MUG", 2)], [("TEE", 1)]])
    for shipment in made:
        ctx.say(f"  {seller.name}: shipment {shipment['id']}, tracking"
                f" {shipment['tracking_number']}")

    async def buyer_order() -> dict[str, Any]:
        return (await ctx.sandbox("/state"))["orders"][number]

    async def fulfilled() -> Any:
        found = await buyer_order()
        live = [f for f in found["fulfillments"] if f["status"] == "SUCCESS"]
        return found if len(live) == 2 and found["displayFulfillmentStatus"] == "FULFILLED" \
            else None

    found = await ctx.until(fulfilled, "both fulfilments in Shopify")
    for f in found["fulfillments"]:
        items = ", ".join(f"{n['quantity']} x {n['lineItem']['sku']}"
                          for n in f["fulfillmentLineItems"])
        ctx.say(f"  Shopify: fulfilment {items}, {f['trackingInfo'][0]['company']}"
                f" {f['trackingInfo'][0]['number']}")
    fo = await ctx.api("GET", f"/api/v1/fulfillment-orders/{fo_id}")
    ctx.say(f"  Shopify: order {found['name']} is {found['displayFulfillmentStatus']};"
            f" FO {fo['status']}")
    polled = await ctx.api("POST", f"/api/v1/connectors/{seller.name}/poll?feed=fulfillments")
    ctx.say(f"  Gateway: polling stopped: the 15-minute poll made"
            f" {polled['feeds']['fulfillments']['requests']} request(s) to {seller.name}"
            " about it")

    corrected = f"{made[1]['tracking_number']}X"
    await connector_class(seller).demo_reship(seller_ctx, seller_order, str(made[1]["id"]),
                                              corrected)
    ctx.say(f"  {seller.name}: the seller deletes shipment {made[1]['id']} and ships again"
            f" with tracking {corrected}")

    async def shows_correction() -> Any:
        found = await buyer_order()
        states = {t["number"]: f["status"] for f in found["fulfillments"]
                  for t in f["trackingInfo"]}
        return found if states.get(corrected) == "SUCCESS" and \
            states.get(made[1]["tracking_number"]) == "CANCELLED" else None

    found = await ctx.until(shows_correction, "the correction in Shopify")
    ctx.say(f"  Shopify: fulfilment {made[1]['tracking_number']} cancelled, {corrected}"
            f" added; order {found['name']} is {found['displayFulfillmentStatus']}")
