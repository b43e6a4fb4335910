"""Amazon SP-API FBA inbound: the connection, paging and throttling, and the inbound shipments
kept, against its sandbox over loopback HTTP, on both storage backends. (What receipts do:
test_stock.py.)"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.amazon_sp.sandbox import state_of
from gateway.domain.records import parse_iso
from tests.amazon.conftest import ENV, add, poll, records, start
from tests.conftest import base_doc


async def test_token_refreshed_before_expiry_and_on_a_403(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    app = amazon_app(token_seconds=3)
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app,
                               refresh_margin_seconds=2)
    add(state, {"ShipmentId": "FBA15A", "items": [{"SellerSKU": "MUG", "QuantityShipped": 5}]})
    await poll(gw, "shipments")
    assert state.tokens_issued == 1
    await poll(gw, "shipments")
    assert state.tokens_issued == 1  # cached
    await asyncio.sleep(1.2)  # within the margin of its expiry: refreshed before use
    await poll(gw, "shipments")
    assert state.tokens_issued == 2
    assert all(r["status"] != 403 for r in state.requests)
    # revoked early: Amazon's 403 Unauthorized, the token dropped and the call made again
    await gw.call("POST", "/api/v1/connectors/amazon/poll?feed=shipments")
    for token in state.tokens:
        state.tokens[token] = 0.0
    before = len(state.requests)
    await poll(gw, "shipments")
    assert [r["status"] for r in state.requests[before:]] == [403, 200, 200]
    assert state.tokens_issued == 3


async def test_paging_next_tokens_empty_last_page_and_a_looping_token(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    app = amazon_app(page_size=2)
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app, end_lag_minutes=2)
    for n in range(5):
        state.add({"ShipmentId": f"FBA15{n}", "items": [{"SellerSKU": "MUG",
                                                          "QuantityShipped": 1}]})
        state.updated[f"FBA15{n}"] = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    state.add({"ShipmentId": "FBA15NEW", "items": [{"SellerSKU": "MUG", "QuantityShipped": 1}]})
    before = len(state.requests)
    result = await poll(gw, "shipments")
    assert result["shipments"] == 5
    calls = state.requests[before:]
    # pages of 2, 2, 1, then the last page's token leads to an empty page: stop
    assert len(calls) == 4
    assert calls[0]["query"]["QueryType"] == "DATE_RANGE"
    for call in calls[1:]:  # with a token only the three: no filters again (Amazon's trap)
        assert set(call["query"]) == {"QueryType", "NextToken", "MarketplaceId"}
    # the window ends a couple of minutes back: never past what Amazon allows
    end = parse_iso(calls[0]["query"]["LastUpdatedBefore"])
    assert end <= datetime.now(UTC) - timedelta(minutes=1, seconds=55)
    await gw.wait_idle()
    # the one updated this minute is past the window's end: the next poll takes it
    assert sorted(await records(gw)) == [f"FBA15{n}" for n in range(5)]

    await gw.call("POST", "/api/v1/connectors/amazon/poll?feed=shipments")  # pass the overlap
    state.loop_next_token = True  # the token comes back again: stop, not loop
    before = len(state.requests)
    result = await poll(gw, "shipments")
    assert len(state.requests) - before == 2 and result["shipments"] == 4


async def test_more_than_200_items_and_receipts_read(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    app = amazon_app()
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app)
    add(state, {"ShipmentId": "FBA15BIG", "ShipmentStatus": "SHIPPED", "items": [
        {"SellerSKU": f"SKU-{n:03d}", "QuantityShipped": 10} for n in range(450)]})
    add(state, {"ShipmentId": "FBA15WORK", "items": [{"SellerSKU": "X", "QuantityShipped": 1}]})
    await poll(gw, "shipments")
    await gw.wait_idle()
    state.items["FBA15BIG"][449]["QuantityReceived"] = 7
    before = len(state.requests)
    result = await poll(gw, "receiving")
    assert result["open"] == 1  # the WORKING one is not open yet
    ops = [r["operation"] for r in state.requests[before:]]
    assert ops == ["getShipmentItemsByShipmentId", "getShipmentItems", "getShipmentItems"]
    await gw.wait_idle()
    big = (await records(gw))["FBA15BIG"]
    assert len(big["items"]) == 450 and big["items"]["SKU-449"]["received"] == 7
    assert [h["status"] for h in big["status_history"]] == ["SHIPPED"]


async def test_a_throttled_operation_waited_out_while_another_proceeds(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any) -> None:
    app = amazon_app()
    gw, state, _ = await start(start_fake, aiohttp_server, tmp_path, app, items_rate=100,
                               items_burst=100)
    for n in range(3):
        add(state, {"ShipmentId": f"FBA15R{n}", "ShipmentStatus": "RECEIVING",
                   "items": [{"SellerSKU": "MUG", "QuantityShipped": 5}]})
    await poll(gw, "shipments")
    await gw.wait_idle()
    from connectors.amazon_sp.sandbox import Bucket
    tight = state.buckets["getShipmentItemsByShipmentId"] = Bucket(2, 1)  # Amazon's own
    tight.tokens = 0  # used up by another app: the first call is a 429 without a rate header
    await gw.call("POST", "/api/v1/connectors/amazon/poll?feed=shipments")  # pass the overlap

    async def timed(feed: str) -> float:
        began = time.monotonic()
        await poll(gw, feed)
        return time.monotonic() - began

    receiving, shipments = await asyncio.gather(timed("receiving"), timed("shipments"))
    assert 429 in [r["status"] for r in state.requests]
    assert receiving >= 0.9  # three calls at Amazon's 2 a second, after the 429s
    assert shipments < receiving  # its own budget: not held up by the throttled one
    await gw.wait_idle()
    assert all(f["items"]["MUG"]["shipped"] == 5 for f in (await records(gw)).values())


async def test_inbound_shipments_kept_with_status_history_and_events(
        start_fake: Any, aiohttp_server: Any, tmp_path: Any, amazon_app: Any,
        receiver: Any) -> None:
    app = amazon_app()
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    doc = {**base_doc(tmp_path / "g.sqlite3"), "connectors": [{
        "name": "amazon", "type": "amazon_sp", "base_url": url,
        "token_url": f"{url}/auth/o2/token", "client_id_env": "AMZ_ID",
        "client_secret_env": "AMZ_SECRET", "refresh_token_env": "AMZ_REFRESH",
        "end_lag_minutes": 0, "overlap_minutes": 60}],
        "subscribers": [{"name": "ops", "url": receiver.url, "secret_env": "SUB_SECRET",
                         "events": ["inbound_shipment.synced"]}]}
    gw = await start_fake(doc, env=ENV)
    state = state_of(app)
    add(state, {"ShipmentId": "FBA15X", "ShipmentName": "Spring restock",
                "ShipmentStatus": "SHIPPED", "items": [
                    {"SellerSKU": "MUG", "QuantityShipped": 100, "QuantityInCase": 20},
                    {"SellerSKU": "TEE", "QuantityShipped": 100}]})
    await poll(gw, "shipments")
    await gw.wait_idle()  # the receiving feed reads the shipments the gateway keeps open
    await poll(gw, "receiving")
    await gw.wait_idle()
    state.shipments["FBA15X"]["ShipmentStatus"] = "RECEIVING"
    state.items["FBA15X"][0]["QuantityReceived"] = 60
    state.updated["FBA15X"] = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    await poll(gw, "shipments")
    await gw.wait_idle()
    await poll(gw, "receiving")
    await gw.wait_idle()
    one = await gw.call("GET", "/api/v1/inbound-shipments/FBA15X")
    assert (one["name"], one["destination"], one["status"]) == ("Spring restock", "MKC6",
                                                               "RECEIVING")
    assert [h["status"] for h in one["status_history"]] == ["SHIPPED", "RECEIVING"]
    assert {i["sku"]: (i["shipped"], i["received"], i["case_quantity"]) for i in one["items"]} \
        == {"MUG": (100, 60, 20), "TEE": (100, 0, 0)}
    # the same reads again change nothing: no event, no new history entry
    await poll(gw, "shipments")
    await gw.wait_idle()
    await poll(gw, "receiving")
    await gw.wait_idle()
    from tests.conftest import wait_events
    events = await wait_events(receiver, 4, "inbound_shipment.synced")
    await asyncio.sleep(0.3)
    assert len(receiver.events("inbound_shipment.synced")) == 4  # header, items, twice
    assert events[-1]["data"]["items"][0]["received"] == 60
    assert [h["status"] for h in (await gw.call(
        "GET", "/api/v1/inbound-shipments/FBA15X"))["status_history"]] == ["SHIPPED",
                                                                            "RECEIVING"]
    assert list(await records(gw, "?status=RECEIVING")) == ["FBA15X"]
    changed_at = one["updated_at"]  # the repeated reads were not changes
    assert (await gw.call("GET", "/api/v1/inbound-shipments/FBA15X"))["updated_at"] == changed_at
    later = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await records(gw, f"?updated_since={later}") == {}
    assert await records(gw, "?status=CLOSED") == {}
    await gw.call("GET", "/api/v1/inbound-shipments/FBA15NONE", expect=404)
    # closed since its items were last read: read once more for its last receipts, then not
    state.shipments["FBA15X"]["ShipmentStatus"] = "CLOSED"
    state.items["FBA15X"][0]["QuantityReceived"] = 100
    state.items["FBA15X"][1]["QuantityReceived"] = 100
    state.updated["FBA15X"] = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    await poll(gw, "shipments")
    await gw.wait_idle()
    assert (await poll(gw, "receiving"))["open"] == 1
    await gw.wait_idle()
    assert (await poll(gw, "receiving"))["open"] == 0
    final = (await records(gw))["FBA15X"]
    assert final["status"] == "CLOSED" and final["items"]["TEE"]["received"] == 100
