"""The demo's NuOrder act: a wholesale order from NuOrder to the 3PL and back.

A retailer's approved order (10 coats, size M) waits in the NuOrder sandbox. The gateway polls
the catalogue, the warehouses and the orders; the order becomes an FO on the channel whose
source_connector is this connector and is marked processed in NuOrder; the channel places it
with its OMS after its delay; the OMS's sandbox ships it in two parts (6 + 4); each shipment
goes back to NuOrder with its tracking number, and NuOrder's order shows shipped. Then stock
levels for two dates are pushed and show consolidated at NuOrder.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.connector import DemoContext, connector_class

UPCS = {"S": "0840001", "M": "0840002", "L": "0840003"}


async def run(ctx: DemoContext) -> None:
    name = ctx.connector.name

    channel = next((c for c in ctx.app_config.channels if c.source_connector == name), None)
    if channel is None or channel.oms is None:
        ctx.say(f"[{name}] no channel takes {name}'s orders and places them with an OMS:"
                " nothing to show")
        return
    ctx.say("")
    ctx.say(f"NuOrder act: a wholesale order from {name} through channel {channel.name!r}")
    await ctx.sandbox("/warehouses", {"name": "Main warehouse", "code": "MAIN"})
    coat = await ctx.sandbox("/products", {
        "style_number": "COAT1", "color": "Navy", "season": "FW26", "name": "Wool coat",
        "brand_id": "demo", "active": True, "archived": False,
        "pricing": {"USD": {"wholesale": 120, "retail": 280}},
        "sizes": [{"size": s, "upc": upc, "_id": f"sku-coat1-navy-{s.lower()}"}
                  for s, upc in UPCS.items()]})
    order = await ctx.sandbox("/orders", {
        "order_number": "NU-5001", "status": "approved", "currency_code": "USD",
        "customer_po_number": "PO-77",
        "retailer": {"_id": "r1", "retailer_name": "Boutique One", "retailer_code": "BOUT1",
                     "buyer_name": "Ann Buyer"},
        "shipping_address": {"line_1": "1 High St", "city": "Portland", "state": "OR",
                             "zip": "97201", "country": "US"},
        "line_items": [{"product": {k: coat[k] for k in ("_id", "style_number", "color",
                                                         "season", "brand_id")},
                        "warehouse": "default", "prebook": False,
                        "sizes": [{"size": "M", "quantity": 10, "price": 120,
                                   "upc": UPCS["M"]}]}]})
    ctx.say(f"  NuOrder: retailer Boutique One's order {order['order_number']} is approved"
            " (10 x COAT1 Navy, size M)")

    for feed in ("products", "locations"):
        await ctx.api("POST", f"/api/v1/connectors/{name}/poll?feed={feed}")
    await ctx.until(lambda: _records(ctx, name, "products"), "the products kept")
    await ctx.api("POST", f"/api/v1/connectors/{name}/poll?feed=orders")

    async def taken() -> Any:
        items = (await ctx.api("GET", f"/api/v1/partner-orders?connector={name}"))["items"]
        return next((o["fulfillment_order_id"] for o in items
                     if o["id"] == order["_id"] and o["fulfillment_order_id"]), None)

    fo_id = await ctx.until(taken, "the FO")
    fo = await ctx.api("GET", f"/api/v1/fulfillment-orders/{fo_id}")
    line = fo["lines"][0]
    ctx.say(f"  Gateway: polled it in as FO {fo_id}: {line['requested']} x SKU {line['sku']}"
            " (the size's UPC)")

    async def processed() -> Any:
        return (await _order(ctx, order["_id"]))["status"] == "processed"

    await ctx.until(processed, "marked processed")
    ctx.say("  NuOrder: the order is now processed (the next poll will not take it again)")

    async def pushed() -> Any:
        fo = await ctx.api("GET", f"/api/v1/fulfillment-orders/{fo_id}")
        return next((p["result"]["partner_order_id"] for p in fo["outbound"]
                     if p["kind"] == "push_order" and p["status"] == "sent"), None)

    ctx.say(f"  Channel {channel.name!r} places it with {channel.oms.connector} after"
            f" {channel.oms.delay_minutes * 60:.0f} s")
    placed = await ctx.until(pushed, "the push to the OMS")
    oms = next(c for c in ctx.app_config.connectors if c.name == channel.oms.connector)
    oms_ctx = replace(ctx, connector=oms, webhook_url=f"{ctx.api_url}/webhooks/{oms.name}")
    await connector_class(oms).demo_ship(oms_ctx, str(placed),
                                         [[(line["sku"], 6)], [(line["sku"], 4)]])

    async def shipped() -> Any:
        found = await _order(ctx, order["_id"])
        live = [s for s in found["shipments"] if not s.get("voided")]
        return (found, live) if found["status"] == "shipped" and len(live) == 2 else None

    found, live = await ctx.until(shipped, "NuOrder's order shipped")
    for shipment in live:
        units = sum(ln["quantity"] for ln in shipment["lines"])
        ctx.say(f"  NuOrder: shipment of {units} unit(s), {shipment['carrier']}"
                f" {', '.join(shipment['tracking_numbers'])}")
    ctx.say(f"  NuOrder: order {found['order_number']} is {found['status']}")

    queued = await ctx.api("POST", "/api/v1/inventory/replenishments", {
        "connector": name, "levels": [
            {"warehouse": "MAIN", "sku": UPCS["M"], "quantity": 40},
            {"warehouse": "MAIN", "sku": UPCS["M"], "quantity": 35},  # a later count
            {"warehouse": "MAIN", "sku": UPCS["S"], "quantity": 20, "date": "2027-02-01",
             "prebook": True},
            {"warehouse": "MAIN", "sku": UPCS["L"], "quantity": 15, "date": "2027-03-01"}]})
    ctx.say(f"  Gateway: {queued['received']} stock levels for two dates, consolidated to"
            f" {queued['lines']} lines, queued for NuOrder")

    async def replenished() -> Any:
        state = await ctx.sandbox("/state")
        return state["replenishments"] if state["flag_refreshes"] else None

    for push in await ctx.until(replenished, "the replenishments"):
        for item in push["replenishments"]:
            when = f"from {item['period_start']}" if item["period_start"] else "now"
            ctx.say(f"  NuOrder: {item['display_name']} {item['quantity']:>3} available {when}"
                    f"{' (prebook)' if item['prebook'] else ''}")
    ctx.say("  NuOrder: inventory flags refreshed for the product")


async def _records(ctx: DemoContext, name: str, kind: str) -> Any:
    return (await ctx.api("GET", f"/api/v1/connectors/{name}/records/{kind}"))["items"]


async def _order(ctx: DemoContext, order_id: str) -> dict[str, Any]:
    state = await ctx.sandbox("/state")
    return next(o for o in state["orders"] if o["_id"] == order_id)
