"""Fulfillment updates back to where an FO's order came from: the connector seam.

No connector in this repository takes fulfillment updates yet (NuOrder and the stores come in
their own issues), so a minimal partner connector type is registered here; it records what
the outbox hands it, and fails on command like a partner would.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway.connector import Connector
from gateway.errors import PartnerUnavailable
from gateway.names import PUSH_FULFILLMENT
from tests.conftest import Sandbox, gateway_doc

SKU = "BOOT-42"


class MarketplacePartner(Connector):
    operations: ClassVar[frozenset[str]] = frozenset({PUSH_FULFILLMENT})
    received: ClassVar[list[dict[str, Any]]] = []
    failures_left: ClassVar[int] = 0

    async def push_fulfillment(self, message: Any) -> dict[str, Any]:
        if MarketplacePartner.failures_left > 0:
            MarketplacePartner.failures_left -= 1
            raise PartnerUnavailable("HTTP 503")
        MarketplacePartner.received.append(dict(message.payload))
        return {"accepted": True}


@pytest.fixture
def marketplace_type() -> Iterator[type[MarketplacePartner]]:
    module = types.ModuleType("connectors.test_marketplace")
    module.CONNECTOR = MarketplacePartner  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    MarketplacePartner.received = []
    MarketplacePartner.failures_left = 1
    yield MarketplacePartner
    del sys.modules[module.__name__]


async def test_allocations_and_status_changes_go_back_to_the_source_in_order(
        start_gateway, tmp_path: Path, sandbox: Sandbox, marketplace_type) -> None:
    doc = gateway_doc(tmp_path / "gateway.sqlite3", sandbox.url)
    doc["connectors"].append({"name": "marketplace", "type": "test_marketplace",
                              "base_url": "http://127.0.0.1:9"})
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

    async def all_received() -> bool:
        return len(marketplace_type.received) == 4

    await gw.wait_for(all_received)
    kinds = [(u["type"], u.get("new_status")) for u in marketplace_type.received]
    assert kinds == [("shipment_allocated", None), ("status_changed", "partially_fulfilled"),
                     ("shipment_allocated", None), ("status_changed", "fulfilled")]
    allocated = marketplace_type.received[0]
    assert allocated["fulfillment_order_id"] == fo["id"] and allocated["channel"] == "market"
    assert allocated["lines"] == [{"line_id": "1", "sku": SKU, "quantity": 2}]
    assert allocated["shipment"]["tracking_numbers"] == [first["shipment"]["trackingNumber"]]
    sent = [o for o in (await gw.fo(fo["id"]))["outbound"] if o["kind"] == "push_fulfillment"]
    assert [o["status"] for o in sent] == ["sent"] * 4
    assert sent[0]["attempts"] == 2  # the first try met a 503 and was retried
