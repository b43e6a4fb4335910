"""Fulfillment updates back to where an FO's order came from: the connector seam.

The partner is the scripted fake connector type (tests/fake_partner.py): it records what the
outbox hands it, and fails on command like a partner would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.errors import PartnerUnavailable
from tests.fake_partner import partner
from tests.shipstation.conftest import Sandbox, gateway_doc

SKU = "BOOT-42"


async def test_allocations_and_status_changes_go_back_to_the_source_in_order(
        start_gateway, tmp_path: Path, sandbox: Sandbox) -> None:
    doc = gateway_doc(tmp_path / "gateway.sqlite3", sandbox.url)
    doc["connectors"].append({"name": "marketplace", "type": "fake", "token_env": "FAKE_TOKEN",
                              "base_url": "http://127.0.0.1:9"})
    marketplace = partner("marketplace")
    marketplace.answer("push_fulfillment", PartnerUnavailable("HTTP 503"))
    doc["channels"] = [{"name": "market", "internal": False, "source_connector": "marketplace",
                        "push_fulfillment_updates": True}]
    gw = await start_gateway(doc)
    await sandbox.subscribe(gw.webhook_url)
    fo = await gw.create_fo([(SKU, 5)], channel="market", order_number="M-9")
    order = await sandbox.order("M-9", [(SKU, 5)], order_key=fo["id"])
    first = await sandbox.ship(order["orderId"], [(SKU, 2)])
    await gw.wait_status(fo["id"], "partially_fulfilled")
    await sandbox.ship(order["orderId"], [(SKU, 3)])
    await gw.wait_status(fo["id"], "fulfilled")

    def received() -> list[dict[str, Any]]:  # what the partner accepted (the 503 it refused)
        return [dict(m.payload) for m in marketplace.called("push_fulfillment")][1:]

    async def all_received() -> bool:
        return len(received()) == 4

    await gw.wait_for(all_received)
    kinds = [(u["type"], u.get("new_status")) for u in received()]
    assert kinds == [("shipment_allocated", None), ("status_changed", "partially_fulfilled"),
                     ("shipment_allocated", None), ("status_changed", "fulfilled")]
    allocated = received()[0]
    assert allocated["fulfillment_order_id"] == fo["id"] and allocated["channel"] == "market"
    assert allocated["lines"] == [{"line_id": "1", "sku": SKU, "quantity": 2}]
    assert allocated["shipment"]["tracking_numbers"] == [first["shipment"]["trackingNumber"]]
    sent = [o for o in (await gw.fo(fo["id"]))["outbound"] if o["kind"] == "push_fulfillment"]
    assert [o["status"] for o in sent] == ["sent"] * 4
    assert sent[0]["attempts"] == 2  # the first try met a 503 and was retried
