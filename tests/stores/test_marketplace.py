"""The marketplace flow across two real platforms' sandboxes, by their webhooks: a Shopify
buyer's order placed with a BigCommerce seller, fulfilled there in two parts, shown with
tracking in Shopify, marked shipped once, polling stopped; then a correction after shipped
(the seller deletes a shipment and ships again) reaching the buyer. Both storage backends."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.shopify.sandbox import display_status
from tests.stores.conftest import (
    BigCommerceSandbox,
    ShopifySandbox,
    bigcommerce_connector,
    marketplace_doc,
    shopify_connector,
    soon,
)


async def test_shopify_buyer_bigcommerce_seller_end_to_end(
        start_market: Any, tmp_path: Any, shopify: ShopifySandbox,
        bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", shopify_connector("buyer", shopify.url),
        bigcommerce_connector("seller", bigcommerce.url)))
    await shopify.control("/hooks", {"url": f"{gw.url}/webhooks/buyer"})
    await bigcommerce.control("/hooks", {"url": f"{gw.url}/webhooks/seller"})
    order = await shopify.control("/orders", {"lines": [{"sku": "MUG", "quantity": 2},
                                                        {"sku": "TEE", "quantity": 1}]})
    number = int(order["id"].rsplit("/", 1)[1])
    fo = await gw.only_fo()

    async def placed() -> Any:
        return (await gw.link(fo["id"], "fulfiller")).get("partner_order_id")

    seller_order = int(await gw.wait_for(placed))
    # the seller fulfils in two parts; its shipment webhooks make it seconds, not a poll
    await bigcommerce.control(f"/orders/{seller_order}/ship", {
        "items": [{"sku": "MUG", "quantity": 2}], "tracking_number": "1ZMUG"})
    await gw.wait_status(fo["id"], "partially_fulfilled")
    buyer = shopify.state.orders[number]
    await gw.wait_for(soon(lambda: len(buyer["fulfillments"]) == 1))
    assert display_status(buyer) == "PARTIALLY_FULFILLED"
    shipped = await bigcommerce.control(f"/orders/{seller_order}/ship", {
        "items": [{"sku": "TEE", "quantity": 1}], "tracking_number": "1ZTEE-TYPO"})
    await gw.wait_status(fo["id"], "fulfilled")
    await gw.wait_for(soon(lambda: len(buyer["fulfillments"]) == 2))
    assert [t["number"] for f in buyer["fulfillments"] for t in f["trackingInfo"]] == [
        "1ZMUG", "1ZTEE-TYPO"]
    assert display_status(buyer) == "FULFILLED"
    status_changes = [e for e in (await gw.fo(fo["id"]))["timeline"]
                      if e["kind"] == "status_changed" and e["to_status"] == "fulfilled"]
    assert len(status_changes) == 1

    # shipped: the 15-minute poll asks the seller nothing more about it
    before = len(bigcommerce.state.requests)
    assert (await gw.poll_feed("seller", "fulfillments"))["requests"] == 0
    assert len(bigcommerce.state.requests) == before

    # a correction after shipped: delete + ship again with the right number
    await bigcommerce.control(f"/orders/{seller_order}/shipments/{shipped['id']}/delete")
    await bigcommerce.control(f"/orders/{seller_order}/ship", {
        "items": [{"sku": "TEE", "quantity": 1}], "tracking_number": "1ZTEE"})

    def corrected() -> bool:
        states = {t["number"]: f["status"] for f in buyer["fulfillments"]
                  for t in f["trackingInfo"]}
        return states == {"1ZMUG": "SUCCESS", "1ZTEE-TYPO": "CANCELLED", "1ZTEE": "SUCCESS"}

    await gw.wait_for(soon(corrected))
    assert display_status(buyer) == "FULFILLED"
    fo = await gw.fo(fo["id"])
    assert fo["status"] == "fulfilled"
    assert sorted(s["status"] for s in fo["shipments"]) == ["shipped", "shipped", "voided"]
    # the hourly check sees the same state: nothing new goes out
    await gw.poll_feed("seller", "corrections")
    await gw.wait_idle()
    await asyncio.sleep(0.2)
    assert len(buyer["fulfillments"]) == 3
