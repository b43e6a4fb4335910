"""Companies, products and locations kept in step with NuOrder, through the gateway's records
routes against the sandbox; what NuOrder is not asked to do answered 501; each toggle off
stops its calls, counted at the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from tests.nuorder.conftest import NuOrderGateway, NuOrderSandbox

BASE = "/api/v1/connectors/nuorder/records"


async def _dead_letters(gw: NuOrderGateway) -> Any:
    return (await gw.call("GET", "/api/v1/dead-letters"))["items"] or None


async def test_companies_come_from_a_cursor_and_are_kept_once(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    first = await nuorder_sandbox.control("/companies", {"name": "Boutique One",
                                                         "code": "BOUT1", "currency_code": "USD"})
    await gw.poll_feed("companies")
    await gw.wait_idle()
    [kept] = await gw.records("companies")
    assert kept["id"] == first["_id"] and kept["fields"]["code"] == "BOUT1"
    [call] = [r for r in nuorder_sandbox.state.requests if r["path"] == "/api/companies/list"]
    assert call["query"] == {}  # the first run takes them all

    second = await nuorder_sandbox.control("/companies", {"name": "Shop Two", "code": "SHOP2"})
    await gw.poll_feed("companies")
    await gw.wait_idle()
    calls = [r for r in nuorder_sandbox.state.requests if r["path"] == "/api/companies/list"]
    since = calls[-1]["query"]["modified_since"]
    assert since <= second["modified_on"]  # from the previous run, not a fixed window
    [state] = [f for f in (await gw.call("GET", "/api/v1/connectors"))["items"][0]["feeds"]
               if f["name"] == "companies"]
    assert state["cursor"] > since  # persisted: the next run starts from this one
    kept = {r["id"]: r for r in await gw.records("companies")}
    assert set(kept) == {first["_id"], second["_id"]}

    # Within the overlap the first company comes again, unchanged: still one record.
    await gw.poll_feed("companies")
    await gw.wait_idle()
    assert len(await gw.records("companies")) == 2


async def test_companies_are_created_updated_and_archived_in_nuorder(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    queued = await gw.call("POST", f"{BASE}/companies", {"fields": {
        "name": "New Shop", "code": "NEW1", "currency_code": "EUR",
        "addresses": [{"line_1": "2 Low St", "city": "York"}]}}, expect=202)
    assert queued["operation"] == "create:companies"

    async def kept() -> Any:
        return await gw.records("companies") or None

    [company] = await gw.wait_for(kept)
    [at_nuorder] = nuorder_sandbox.state.companies.values()
    assert company["id"] == at_nuorder["_id"] and at_nuorder["currency_code"] == "EUR"

    await gw.call("PATCH", f"{BASE}/companies/{company['id']}",
                  {"fields": {"currency_code": "GBP"}}, expect=202)

    async def updated() -> Any:
        return at_nuorder["currency_code"] == "GBP"

    await gw.wait_for(updated)
    await gw.call("POST", f"{BASE}/companies/{company['id']}/archive", expect=202)

    async def archived() -> Any:
        [record] = await gw.records("companies")
        return record["archived"] and at_nuorder["archived"]

    await gw.wait_for(archived)
    assert len(nuorder_sandbox.state.companies) == 1  # updated in place, by code

    # What the gateway can see is wrong is refused before anything is queued.
    bad = await gw.call("PATCH", f"{BASE}/companies/{company['id']}",
                        {"fields": {"currency_code": "euro"}}, expect=400)
    assert "ISO 4217" in bad["error"]["message"]
    moved = await gw.call("PATCH", f"{BASE}/companies/{company['id']}",
                          {"fields": {"code": "OTHER"}}, expect=400)
    assert "cannot be changed" in moved["error"]["message"]
    taken = await gw.call("POST", f"{BASE}/companies", {"fields": {"name": "Again",
                                                                   "code": "NEW1"}}, expect=409)
    assert "NEW1" in taken["error"]["message"]


async def test_nuorders_409_on_a_duplicate_code_is_a_dead_letter_with_its_message(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    # Created in NuOrder since the last sync: the gateway cannot know the code is taken.
    await nuorder_sandbox.control("/companies", {"name": "Elsewhere", "code": "DUP1"})
    await gw.call("POST", f"{BASE}/companies", {"fields": {"name": "Mine", "code": "DUP1"}},
                  expect=202)
    [letter] = await gw.wait_for(lambda: _dead_letters(gw))
    assert letter["kind"] == "create:companies" and letter["attempts"] == 1
    assert "HTTP 409" in letter["error"] and "DUP1 already exists" in letter["error"]
    assert len(nuorder_sandbox.state.companies) == 1


@pytest.mark.parametrize(("method", "path", "operation"), [
    ("POST", f"{BASE}/orders", "create:orders"),
    ("POST", f"{BASE}/orders/abc/delete", "delete:orders"),
    ("POST", f"{BASE}/orders/abc/hold", "hold:orders"),
    ("GET", f"{BASE}/fulfillment_orders", "list:fulfillment_orders"),
    ("PATCH", f"{BASE}/products/abc", "update:products"),
])
async def test_what_nuorder_is_not_asked_to_do_is_answered_501(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox, method: str, path: str,
        operation: str) -> None:
    gw = await start_nuorder()
    body = {"fields": {"x": 1}} if method != "GET" else None
    answer = await gw.call(method, path, body, expect=501)
    assert answer["error"]["code"] == "not_supported"
    assert operation in answer["error"]["message"]
    assert nuorder_sandbox.state.requests == []  # never attempted


async def test_a_channel_cannot_place_orders_with_nuorder(
        nuorder_sandbox: NuOrderSandbox, tmp_path: Any) -> None:
    from gateway import config as config_mod
    from gateway.app import Gateway
    from gateway.errors import ConfigError
    from tests.nuorder.conftest import NU_ENV, nuorder_doc

    doc = nuorder_doc(tmp_path / "g.sqlite3", nuorder_sandbox.url, channels=[{
        "name": "wrong", "oms": {"connector": "nuorder"}}])
    with pytest.raises(ConfigError) as raised:
        Gateway(config_mod.parse(doc, NU_ENV))
    assert "push_order" in str(raised.value) and "placed in NuOrder" in str(raised.value)


TOGGLES = [
    ("sync_companies", "companies", "GET", "/api/companies/list"),
    ("fetch_products", "products", "GET", "/api/products/list"),
    ("show_inventory_locations", "locations", "GET", "/api/warehouses/list"),
    ("import_orders", "orders", "GET", "/api/orders/approved"),
]


@pytest.mark.parametrize(("toggle", "feed", "method", "path"), TOGGLES)
async def test_each_feed_toggle_off_stops_its_calls(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox, toggle: str, feed: str,
        method: str, path: str) -> None:
    gw = await start_nuorder(**{toggle: False})
    await gw.poll("nuorder")  # every enabled feed
    assert nuorder_sandbox.calls(method, path) == 0
    for other, _, other_method, other_path in TOGGLES:
        if other != toggle:
            assert nuorder_sandbox.calls(other_method, other_path) == 1, other
    answer = await gw.call("POST", f"/api/v1/connectors/nuorder/poll?feed={feed}", expect=409)
    assert toggle in answer["error"]["message"] or "off" in answer["error"]["message"]


async def test_push_toggles_off_stop_their_calls(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    from tests.nuorder.test_outbound import _one_order

    gw = await start_nuorder(push_fulfillments=False, push_inventory=False,
                             mark_processed=False)
    order, fo = await _one_order(gw, nuorder_sandbox, {"S": 1})
    await gw.ship(fo["id"], "S1", [("0001", 1)], "1Z-OFF")
    await gw.wait_status(fo["id"], "fulfilled")
    refused = await gw.call("POST", "/api/v1/inventory/replenishments", {"levels": [
        {"warehouse": "MAIN", "sku": "0001", "quantity": 1}]}, expect=501)
    assert "push_inventory = false" in refused["error"]["message"]

    async def settled() -> bool:
        stats = await gw.gateway.storage.outbox_stats()
        return stats.get("pending", 0) == 0
    await gw.wait_for(settled)
    assert nuorder_sandbox.state.orders[order["_id"]]["status"] == "approved"  # not processed
    for method, prefix in (("POST", f"/api/order/{order['_id']}/"), ("PUT", "/api/v3.0/"),
                           ("PUT", "/api/inventory/flags")):
        assert nuorder_sandbox.calls(method, prefix) == 0, prefix
    assert await _dead_letters(gw) is None


async def test_company_writes_off_with_sync_companies(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder(sync_companies=False)
    off = await gw.call("POST", f"{BASE}/companies", {"fields": {"name": "x", "code": "X"}},
                        expect=501)
    assert "sync_companies = false" in off["error"]["message"]
    assert nuorder_sandbox.state.requests == []


async def test_one_company_per_code_when_nuorder_lists_two(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    """A company re-created in NuOrder under the same code: the newer one is kept."""
    gw = await start_nuorder()
    await nuorder_sandbox.control("/companies", {"name": "Old entry", "code": "SAME"})
    newer = await nuorder_sandbox.control("/companies", {"name": "New entry", "code": "SAME"})
    await gw.poll_feed("companies")
    await gw.wait_idle()
    [kept] = await gw.records("companies")
    assert kept["id"] == newer["_id"] and kept["fields"]["name"] == "New entry"
