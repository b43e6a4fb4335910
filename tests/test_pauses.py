"""An operator's pauses through the API: a paused feed is not polled (scheduled or by hand)
until resumed; nothing is sent to a paused destination, and its messages go, in order, once
it is resumed (each FO's in their order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import fake_doc
from tests.fake_partner import partner


async def test_a_paused_feed_is_not_polled_until_resumed(start_fake: Any,
                                                         tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "portal"))
    paused = await gw.call("POST", "/api/v1/connectors/portal/feeds/orders/pause")
    assert paused["paused_by"] == "api" and paused["paused_at"]
    refused = await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders", expect=409)
    assert "paused (by api" in refused["error"]["message"]
    every = await gw.call("POST", "/api/v1/connectors/portal/poll")
    assert every["feeds"]["orders"]["paused_by"] == "api"
    assert [feed for feed, _ in partner("portal").polls] == ["records", "shipments", "watched"]
    # The scheduler's run skips it too.
    connector = gw.gateway.connectors["portal"]
    assert await gw.gateway.poller.run_feed(connector, connector.feed("orders"),
                                            scheduled=True) is None
    assert "orders" not in [feed for feed, _ in partner("portal").polls]
    [listed] = [f for f in (await gw.call("GET", "/api/v1/connectors"))["items"][0]["feeds"]
                if f["name"] == "orders"]
    assert listed["paused_by"] == "api"

    resumed = await gw.call("POST", "/api/v1/connectors/portal/feeds/orders/resume")
    assert resumed["paused_by"] is None
    await gw.call("POST", "/api/v1/connectors/portal/poll?feed=orders")
    assert partner("portal").polls[-1][0] == "orders"
    await gw.call("POST", "/api/v1/connectors/portal/feeds/nope/pause", expect=404)


async def test_a_paused_destination_gets_nothing_until_resumed(start_fake: Any,
                                                               tmp_path: Path) -> None:
    gw = await start_fake(fake_doc(tmp_path / "g.sqlite3", "wms", channels=[
        {"name": "web", "internal": True, "oms": {"connector": "wms"}}]))
    view = await gw.call("POST", "/api/v1/destinations/connector:wms/pause")
    assert view == {"destination": "connector:wms", "paused_by": "api",
                    "paused_at": view["paused_at"], "oldest_pending_age_seconds": None}
    first = await gw.create_fo([("SKU-1", 1)], channel="web", order_number="ONE")
    second = await gw.create_fo([("SKU-1", 1)], channel="web", order_number="TWO")

    async def waiting() -> Any:
        [d] = [d for d in (await gw.call("GET", "/api/v1/destinations"))["items"]
               if d["destination"] == "connector:wms"]
        return d if d["oldest_pending_age_seconds"] is not None else None

    assert (await gw.wait_for(waiting))["paused_by"] == "api"
    gw.gateway.dispatcher.wake()
    assert partner("wms").calls == []  # nothing sent while paused
    # and nothing is due: the dispatcher sleeps instead of waking for them again and again
    assert await gw.gateway.storage.next_outbox_due() is None
    await gw.call("POST", "/api/v1/destinations/connector:wms/resume")

    async def both_sent() -> Any:
        return {(await gw.fo(fo["id"]))["outbound"][0]["status"]
                for fo in (first, second)} == {"sent"}

    await gw.wait_for(both_sent)
    assert sorted(m.payload["order_number"] for m in partner("wms").calls) == ["ONE", "TWO"]
    missing = await gw.call("POST", "/api/v1/destinations/connector:nope/pause", expect=404)
    assert "connector:wms" in missing["error"]["message"]
    await gw.call("POST", "/api/v1/destinations/elsewhere/pause", expect=404)
