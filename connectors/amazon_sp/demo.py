"""The demo's Amazon act: an FBA inbound shipment of 2 SKUs x 100 units is synced from the
sandbox, reconciled into a transfer order from the merchant's warehouse, marked shipped, and
received by Amazon in two partial scans over two (simulated) days: 60 then 40 of one SKU,
all of the other at once. On hand at Amazon ends at exactly the units shipped."""

from __future__ import annotations

from typing import Any

from gateway.connector import DemoContext

SHIPMENT = "FBA15DEMO1"
SOURCE = "WH-RENO"
# Amazon's changes are dated a few minutes back, inside the gateway's date range (which
# ends a couple of minutes before now, as Amazon asks)
AGO = 5.0


async def run(ctx: DemoContext) -> None:
    name = ctx.connector.name
    ctx.say("")
    ctx.say(f"Amazon act: an FBA inbound shipment from {name}, received into on-hand stock")
    await ctx.sandbox("/shipments", {
        "ShipmentId": SHIPMENT, "ShipmentName": "Spring restock", "ShipmentStatus": "SHIPPED",
        "DestinationFulfillmentCenterId": "MKC6", "ago_minutes": AGO,
        "items": [{"SellerSKU": "MUG", "QuantityShipped": 100, "QuantityInCase": 20},
                  {"SellerSKU": "TEE", "QuantityShipped": 100}]})
    ctx.say(f"  Amazon: inbound shipment {SHIPMENT} 'Spring restock' to MKC6,"
            " 100 x MUG + 100 x TEE, SHIPPED")

    async def poll() -> None:
        for feed in ("shipments", "receiving"):
            await ctx.api("POST", f"/api/v1/connectors/{name}/poll?feed={feed}")

    async def synced(check: Any) -> Any:
        async def read() -> Any:
            await poll()
            page = await ctx.api("GET", f"/api/v1/inbound-shipments?connector={name}")
            found = next((s for s in page["items"] if s["id"] == SHIPMENT), None)
            return found if found and check(found) else None
        return await ctx.until(read, f"inbound shipment {SHIPMENT}")

    shipment = await synced(lambda s: s["items"])
    ctx.say(f"  Gateway: synced {SHIPMENT} ({shipment['status']}): "
            + ", ".join(f"{i['sku']} {i['shipped']} shipped" for i in shipment["items"]))
    order = await ctx.api("POST", f"/api/v1/inbound-shipments/{SHIPMENT}/reconcile",
                          {"source_location": SOURCE, "connector": name})
    ctx.say(f"  Gateway: reconciled into transfer order {order['id']}: sales order (FO)"
            f" {order['sales_order']['fulfillment_order_id']} from {SOURCE}, purchase order"
            f" {order['purchase_order']['id']} to {order['destination_location']}")
    order = await ctx.api("POST", f"/api/v1/transfer-orders/{order['id']}/ship",
                          {"carrier": "UPS", "tracking_numbers": ["1ZFBA0000000000001"]})
    fo = await ctx.api("GET", "/api/v1/fulfillment-orders/"
                       f"{order['sales_order']['fulfillment_order_id']}")
    ctx.say(f"  Gateway: marked shipped (UPS 1ZFBA0000000000001): sales order {fo['status']};"
            f" at {SOURCE}: {await _levels(ctx, SOURCE)} (the ledger counts what it moved)")
    location = order["destination_location"]

    for day, scan in ((1, {"MUG": 60}), (2, {"MUG": 40, "TEE": 100})):
        if day == 1:
            await ctx.sandbox(f"/shipments/{SHIPMENT}/status", {"status": "RECEIVING",
                                                                "ago_minutes": AGO})
        await ctx.sandbox(f"/shipments/{SHIPMENT}/receive", {**scan, "ago_minutes": AGO})
        ctx.say(f"  Amazon, day {day}: scanned in "
                + ", ".join(f"{n} x {sku}" for sku, n in scan.items()))
        want = {"MUG": 60, "TEE": 0} if day == 1 else {"MUG": 100, "TEE": 100}
        await synced(lambda s, want=want: {i["sku"]: i["received"] for i in s["items"]}
                     == want)
        ctx.say(f"  Gateway: received; at {location}: {await _levels(ctx, location)}")
    await ctx.sandbox(f"/shipments/{SHIPMENT}/status", {"status": "CLOSED", "ago_minutes": AGO})

    async def closed() -> Any:
        await poll()
        found = await ctx.api("GET", f"/api/v1/transfer-orders/{order['id']}")
        return found if found["purchase_order"]["status"] == "closed" else None

    order = await ctx.until(closed, "the purchase order closed")
    lines = ", ".join(f"{ln['sku']} {ln['received']}/{ln['ordered']}"
                      for ln in order["purchase_order"]["lines"])
    ctx.say(f"  Amazon: {SHIPMENT} CLOSED. Gateway: purchase order closed, received {lines};"
            f" on hand at {location}: {await _levels(ctx, location)}")


async def _levels(ctx: DemoContext, location: str) -> str:
    page = await ctx.api("GET", f"/api/v1/inventory?location={location}")
    return ", ".join(f"{lv['sku']} {lv['on_hand']} on hand, {lv['in_transit']} in transit"
                     for lv in page["items"]) or "nothing"
