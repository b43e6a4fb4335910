"""BigCommerce on each side of a marketplace channel, against its sandbox over loopback HTTP
(the other side is the scripted fake connector), on both storage backends."""

from __future__ import annotations

import asyncio
from typing import Any

from tests import fake_partner
from tests.stores.conftest import (
    BigCommerceSandbox,
    MarketplaceGateway,
    bigcommerce_connector,
    fake_connector,
    marketplace_doc,
)


async def placed(gw: MarketplaceGateway, bc: BigCommerceSandbox,
                 lines: list[tuple[str, int]]) -> tuple[str, int]:
    """A buyer's order through the gateway into the BigCommerce seller store."""
    await gw.fake_order("market", "B1", lines)
    fo = await gw.only_fo()

    async def pushed() -> Any:
        return (await gw.link(fo["id"], "fulfiller")).get("partner_order_id")

    order_id = await gw.wait_for(pushed)
    assert bc.order_of(fo["id"])["id"] == int(order_id)
    return fo["id"], int(order_id)


def pushes(kind: str) -> list[dict[str, Any]]:
    """What the (fake) buyer's store was sent: its fulfilments (not the status updates)."""
    return [m.payload for m in fake_partner.partner("market").calls if m.kind == kind
            and m.payload.get("type") != "status_changed"]


def statuses() -> list[str]:
    return [m.payload["new_status"] for m in fake_partner.partner("market").calls
            if m.payload.get("type") == "status_changed"]


async def test_seller_partial_then_complete_shipped_once_and_polling_stops(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        bigcommerce_connector("seller", bigcommerce.url)))
    fo_id, order_id = await placed(gw, bigcommerce, [("MUG", 2), ("TEE", 1)])
    order = bigcommerce.state.orders[order_id]
    assert order["status_id"] == 11 and order["external_source"] == "fulfillment-gateway"

    await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "MUG", "quantity": 2}], "tracking_number": "1Z-ONE"})
    result = await gw.poll_feed("seller", "fulfillments")
    # the listing, then the watched order's products (once) and its shipments
    assert result["requests"] == 3 and result["read"] == 1
    await gw.wait_status(fo_id, "partially_fulfilled")
    await gw.wait_for(lambda: _async(len(pushes("push_fulfillment")) == 1))
    first = pushes("push_fulfillment")[0]
    assert first["shipment"]["tracking_numbers"] == ["1Z-ONE"]
    assert first["lines"][0]["quantity"] == 2 and first["partner_order_id"] == "B1"

    await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "TEE", "quantity": 1}], "tracking_number": "1Z-TWO"})
    result = await gw.poll_feed("seller", "fulfillments")
    assert result["requests"] == 2  # the products are kept from the first read
    await gw.wait_status(fo_id, "fulfilled")
    await gw.wait_for(lambda: _async("fulfilled" in statuses()))
    assert bigcommerce.state.orders[order_id]["status_id"] == 2
    assert statuses() == ["partially_fulfilled", "fulfilled"]
    assert [p["shipment"]["tracking_numbers"] for p in pushes("push_fulfillment")] == [
        ["1Z-ONE"], ["1Z-TWO"]]

    # The FO is done: the 15-minute feed no longer asks about it at all.
    before = len(bigcommerce.state.requests)
    result = await gw.poll_feed("seller", "fulfillments")
    assert result["requests"] == 0 and len(bigcommerce.state.requests) == before
    assert (await gw.link(fo_id, "fulfiller"))["state"] == "watching"


async def test_seller_correction_after_shipped_reaches_the_buyer(
        start_market: Any, tmp_path: Any, bigcommerce: BigCommerceSandbox) -> None:
    gw = await start_market(marketplace_doc(
        tmp_path / "g.sqlite3", fake_connector("market"),
        bigcommerce_connector("seller", bigcommerce.url)))
    fo_id, order_id = await placed(gw, bigcommerce, [("MUG", 1)])
    shipped = await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "MUG", "quantity": 1}], "tracking_number": "1Z-WRONG"})
    await gw.poll_feed("seller", "fulfillments")
    await gw.wait_status(fo_id, "fulfilled")
    await gw.wait_for(lambda: _async(len(pushes("push_fulfillment")) >= 1))

    # The seller corrects the tracking: deletes the shipment and ships again.
    await bigcommerce.control(f"/orders/{order_id}/shipments/{shipped['id']}/delete")
    await bigcommerce.control(f"/orders/{order_id}/ship", {
        "items": [{"sku": "MUG", "quantity": 1}], "tracking_number": "1Z-RIGHT"})
    assert (await gw.poll_feed("seller", "fulfillments"))["requests"] == 0
    result = await gw.poll_feed("seller", "corrections")
    assert result["read"] == 1
    await gw.wait_for(lambda: _async(len(pushes("cancel_fulfillment")) == 1))
    await gw.wait_for(lambda: _async(any(
        p.get("shipment", {}).get("tracking_numbers") == ["1Z-RIGHT"]
        for p in pushes("push_fulfillment"))))
    [cancel] = pushes("cancel_fulfillment")
    assert cancel["partner_fulfillment_id"].startswith("F-")
    fo = await gw.fo(fo_id)
    assert fo["status"] == "fulfilled"
    assert sorted(s["status"] for s in fo["shipments"]) == ["shipped", "voided"]


async def _async(value: Any) -> Any:
    await asyncio.sleep(0)
    return value
