"""The demo's Amazon act as a newcomer runs it: an inbound shipment of 2 SKUs x 100 synced,
reconciled, shipped, received in two partial scans (60 then 40 of one SKU, all of the other),
and on hand at Amazon ending at exactly the units shipped."""

from __future__ import annotations

from pathlib import Path

from tests.processes import run_demo


async def test_the_demo_receives_an_inbound_shipment_into_on_hand(tmp_path: Path) -> None:
    text, _ = await run_demo(tmp_path, "--scenario", "amazon_sp")
    act = text[text.index("Amazon act"):]
    assert "Gateway: synced FBA15DEMO1 (SHIPPED): MUG 100 shipped, TEE 100 shipped" in act
    assert "reconciled into transfer order to_" in act
    assert "sales order fulfilled; at WH-RENO: MUG -100 on hand" in act
    day1 = act[act.index("day 1"):act.index("day 2")]
    assert "at amazon-us: MUG 60 on hand, 40 in transit, TEE 0 on hand, 100 in transit" in day1
    assert "received 60 x MUG" in day1  # the signed purchase_order.received event
    assert "purchase order closed, received MUG 100/100, TEE 100/100; on hand at amazon-us:" \
        " MUG 100 on hand, 0 in transit, TEE 100 on hand, 0 in transit" in act
    assert act.count("purchase_order.received") == 2 and "REJECTED" not in text
