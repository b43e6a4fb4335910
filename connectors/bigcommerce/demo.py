"""BigCommerce's part in another type's demo, as the seller's store: its sandbox ships the
order the gateway placed there, and corrects a shipment, each telling the gateway by a signed
webhook as BigCommerce does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from gateway.connector import DemoContext

PART_SECONDS = 2.0


async def listen(ctx: DemoContext) -> None:
    await ctx.sandbox("/hooks", {"url": ctx.webhook_url})


async def ship(ctx: DemoContext, order_id: str, parts: Sequence[Sequence[tuple[str, int]]],
               tracking: Sequence[str]) -> list[dict[str, Any]]:
    await listen(ctx)
    made = []
    for index, (part, number) in enumerate(zip(parts, tracking, strict=True)):
        if index:
            await asyncio.sleep(PART_SECONDS)  # a few seconds apart, as a warehouse would
        made.append(await ctx.sandbox(f"/orders/{order_id}/ship", {
            "items": [{"sku": sku, "quantity": q} for sku, q in part],
            "tracking_number": number, "shipping_provider": "ups"}))
    return made


async def reship(ctx: DemoContext, order_id: str, shipment_id: str,
                 tracking: str) -> dict[str, Any]:
    await listen(ctx)
    state = await ctx.sandbox("/state")
    shipment = next(s for s in state["orders"][order_id]["shipments"]
                    if str(s["id"]) == shipment_id)
    skus = {p["id"]: p["sku"] for p in state["orders"][order_id]["products"]}
    await ctx.sandbox(f"/orders/{order_id}/shipments/{shipment_id}/delete", {})
    return await ctx.sandbox(f"/orders/{order_id}/ship", {
        "items": [{"sku": skus[i["order_product_id"]], "quantity": i["quantity"]}
                  for i in shipment["items"]],
        "tracking_number": tracking, "shipping_provider": "ups"})

