"""What goes back to NuOrder, through the gateway against the sandbox: shipments as they are
allocated (6 then 4 units: two shipments there), the shipped status, a void withdrawn, a retry
after NuOrder's 500 landing once; inventory levels consolidated and sent as replenishments
with the flags refreshed; what NuOrder does not know refused before sending."""

from __future__ import annotations

from typing import Any

from tests.fake_partner import partner
from tests.nuorder.conftest import NuOrderGateway, NuOrderSandbox


async def _one_order(gw: NuOrderGateway, sandbox: NuOrderSandbox, sizes: dict[str, int]
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    coat = await sandbox.product("COAT1", "Navy", {"S": "0001", "M": "0002"})
    await sandbox.control("/warehouses", {"name": "Main", "code": "MAIN"})
    order = await sandbox.order("5001", [(coat, sizes)])
    await gw.poll_feed("locations")
    [fo] = await gw.take_orders()
    await gw.wait_for(lambda: _now(bool(partner("wms").called("push_order"))))
    return order, fo


async def _now(value: Any) -> Any:
    return value


async def test_two_shipments_reach_nuorder_and_the_order_ships(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    order, fo = await _one_order(gw, nuorder_sandbox, {"M": 10})
    held = nuorder_sandbox.state.orders[order["_id"]]
    nuorder_sandbox.state.faults.clear()
    await nuorder_sandbox.control("/faults", {"path": f"/api/order/{order['_id']}/shipments",
                                              "method": "POST", "status": 500, "times": 1})

    await gw.ship(fo["id"], "S1", [("0002", 6)], "1Z-SIX")
    await gw.wait_status(fo["id"], "partially_fulfilled")

    async def shipments(count: int) -> Any:
        async def check() -> Any:
            live = [s for s in held["shipments"] if not s.get("voided")]
            return live if len(live) == count else None
        return await gw.wait_for(check)

    [first] = await shipments(1)  # NuOrder's 500 first, then the retry: one shipment
    assert first["tracking_numbers"] == ["1Z-SIX"] and first["carrier"] == "ups"
    assert first["lines"] == [{"product_id": held["line_items"][0]["product"]["_id"],
                               "size": "M", "quantity": 6, "sku": "0002"}]
    assert held["status"] == "processed"

    await gw.ship(fo["id"], "S2", [("0002", 4)], "1Z-FOUR")
    await gw.wait_status(fo["id"], "fulfilled")
    both = await shipments(2)
    assert sorted(s["tracking_numbers"][0] for s in both) == ["1Z-FOUR", "1Z-SIX"]

    async def shipped() -> bool:
        return held["status"] == "shipped"

    await gw.wait_for(shipped)
    origin = await gw.origin_link(fo["id"])
    assert sorted(p["partner_id"] for p in origin["pushed"].values()) == sorted(
        s["_id"] for s in both)
    assert all(p["status"] == "pushed" for p in origin["pushed"].values())
    assert nuorder_sandbox.calls("POST", f"/api/order/{order['_id']}/shipments") == 3


async def test_a_shipment_whose_answer_was_lost_is_not_written_twice(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    order, fo = await _one_order(gw, nuorder_sandbox, {"S": 3})
    held = nuorder_sandbox.state.orders[order["_id"]]
    # NuOrder writes the shipment, then the answer is lost (a 502 on the way back).
    await nuorder_sandbox.control("/faults", {"path": f"/api/order/{order['_id']}/shipments",
                                              "method": "POST", "status": 502, "after": True})
    await gw.ship(fo["id"], "S1", [("0001", 3)], "1Z-ONCE")

    async def recorded() -> Any:
        return (await gw.origin_link(fo["id"]))["pushed"] or None

    pushed = await gw.wait_for(recorded)
    [shipment] = held["shipments"]  # the retry found it rather than writing it again
    assert [p["partner_id"] for p in pushed.values()] == [shipment["_id"]]
    assert nuorder_sandbox.calls("POST", f"/api/order/{order['_id']}/shipments") == 1


async def test_a_voided_shipment_is_withdrawn_from_nuorder(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    order, fo = await _one_order(gw, nuorder_sandbox, {"S": 2})
    held = nuorder_sandbox.state.orders[order["_id"]]
    await gw.ship(fo["id"], "S1", [("0001", 2)], "1Z-VOID")

    async def written() -> Any:
        return held["shipments"] or None

    [shipment] = await gw.wait_for(written)
    await gw.ship(fo["id"], "S1", [("0001", 2)], "1Z-VOID", status="voided")

    async def withdrawn() -> bool:
        return bool(shipment.get("voided"))

    await gw.wait_for(withdrawn)
    assert nuorder_sandbox.calls("DELETE", f"/api/order/{order['_id']}/shipments/") == 1


async def test_inventory_is_consolidated_sent_as_replenishments_and_flags_refreshed(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    await _one_order(gw, nuorder_sandbox, {"S": 1})
    [main] = nuorder_sandbox.state.warehouses.values()
    queued = await gw.call("POST", "/api/v1/inventory/replenishments", {"levels": [
        {"warehouse": "MAIN", "sku": "0001", "quantity": 5},
        {"warehouse": "MAIN", "sku": "0001", "quantity": 7},  # the same level again: last wins
        {"warehouse": "Main", "sku": "0002", "quantity": 3, "date": "2027-02-01",
         "prebook": True},
        {"warehouse": "MAIN", "sku": "0002", "quantity": 9, "date": "2027-03-01"},
    ]}, expect=202)
    assert queued["received"] == 4 and queued["lines"] == 3
    assert [m["operation"] for m in queued["messages"]] == ["push_inventory"]

    async def sent() -> Any:
        return nuorder_sandbox.state.flag_refreshes or None

    [refreshed] = await gw.wait_for(sent)
    [push] = nuorder_sandbox.state.replenishments
    assert push["warehouse"] == main["_id"]
    got = {(r["sku_id"], r["period_start"]): (r["quantity"], r["prebook"])
           for r in push["replenishments"]}
    assert got == {("sku-COAT1-Navy-S", None): (7, False),
                   ("sku-COAT1-Navy-M", "2027-02-01"): (3, True),
                   ("sku-COAT1-Navy-M", "2027-03-01"): (9, False)}
    [product] = nuorder_sandbox.state.products.values()
    assert refreshed == [product["_id"]]
    # the flag refresh follows the replenishments
    calls = [r["path"] for r in nuorder_sandbox.state.requests if r["method"] == "PUT"]
    assert calls[-2:] == [f"/api/v3.0/warehouse/{main['_id']}/replenishments",
                          "/api/inventory/flags"]


async def test_an_unknown_sku_or_warehouse_is_refused_before_sending(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    gw = await start_nuorder()
    await _one_order(gw, nuorder_sandbox, {"S": 1})
    before = len(nuorder_sandbox.state.requests)
    refused = await gw.call("POST", "/api/v1/inventory/replenishments", {"levels": [
        {"warehouse": "NOWHERE", "sku": "0001", "quantity": 1},
        {"warehouse": "MAIN", "sku": "NOSUCH", "quantity": 1}]}, expect=400)
    message = refused["error"]["message"]
    assert "warehouse 'NOWHERE'" in message and "SKU 'NOSUCH'" in message
    assert len(nuorder_sandbox.state.requests) == before
    bad = await gw.call("POST", "/api/v1/inventory/replenishments", {"levels": [
        {"warehouse": "MAIN", "sku": "0001", "quantity": 1, "prebook": True}]}, expect=400)
    assert "prebook stock needs its date" in bad["error"]["message"]


async def test_inventory_push_from_a_csv_file(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox, tmp_path: Any) -> None:
    from tests.nuorder.conftest import NU_ENV, nuorder_toml
    from tests.processes import run_cli

    gw = await start_nuorder()
    await _one_order(gw, nuorder_sandbox, {"S": 1})
    config = tmp_path / "cli.toml"  # on the serving gateway's database: tmp_path/g.sqlite3
    nuorder_toml(config, nuorder_sandbox.url)
    bad = tmp_path / "bad.csv"
    bad.write_text("warehouse,sku,quantity,date,prebook\nMAIN,0001,-1,,\nMAIN,0001,2,"
                   "tomorrow,\nMAIN,0002,3,2027-01-01,maybe\n")
    code, out = await run_cli("inventory", "push", str(bad), "--config", str(config),
                              env=NU_ENV)
    assert code == 1, out
    assert "line 2: quantity" in out and "line 3: date" in out and "line 4: prebook" in out
    assert "nothing queued" in out
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("warehouse,sku,quantity\nMAIN,9999,1\n")
    code, out = await run_cli("inventory", "push", str(unknown), "--config", str(config),
                              env=NU_ENV)
    assert code == 1 and "SKU '9999'" in out, out

    good = tmp_path / "levels.csv"
    good.write_text("warehouse,sku,quantity,date,prebook\n"
                    "MAIN,0001,4,,\nMAIN,0001,6,,\nMAIN,0002,8,2027-01-15,true\n")
    code, out = await run_cli("inventory", "push", str(good), "--config", str(config),
                              env=NU_ENV)
    assert code == 0, out
    assert "3 row(s) read; 2 line(s) after consolidation (1 repeated level(s) replaced" in out
    assert "1 available now, 1 future (1 prebook)" in out and "nuorder: 1 push(es)" in out
    assert nuorder_sandbox.state.replenishments == []  # queued by the command, not sent

    async def sent() -> Any:
        return nuorder_sandbox.state.flag_refreshes or None

    # the serving gateway sends what another process queued
    await gw.wait_for(sent, within=15)
    [push] = nuorder_sandbox.state.replenishments
    assert sorted((r["display_name"], r["quantity"], r["prebook"])
                  for r in push["replenishments"]) == [("0001", 6, False), ("0002", 8, True)]


async def test_nuorder_errors_are_logged_with_call_status_and_message_but_no_secret(
        start_nuorder: Any, nuorder_sandbox: NuOrderSandbox) -> None:
    import io

    from gateway import logs
    from tests.nuorder.conftest import GOOD

    gw = await start_nuorder()
    said = io.StringIO()
    logs.configure("WARNING", stream=said)
    try:
        await nuorder_sandbox.control("/faults", {"path": "/api/products/list",
                                                  "status": 429})
        failed = await gw.call("POST", "/api/v1/connectors/nuorder/poll?feed=products",
                               expect=None)
        await nuorder_sandbox.control("/faults", {"path": "/api/warehouses/list",
                                                  "delay_seconds": 7, "status": 200})
        slow = await gw.call("POST", "/api/v1/connectors/nuorder/poll?feed=locations",
                             expect=None)
    finally:
        logs.configure("WARNING")
    assert "HTTP 429: Too many requests" in str(failed)
    [item] = [c for c in (await gw.call("GET", "/api/v1/connectors"))["items"]
              if c["name"] == "nuorder"]
    assert item["rate_limited_last_hour"] == 1  # the console's overview shows it
    assert "TimeoutError" in str(slow)  # request_timeout_seconds = 5
    text = said.getvalue()
    assert '"call":"GET /api/products/list"' in text and '"status":429' in text
    assert '"message":"Too many requests"' in text and '"event":"nuorder.error"' in text
    assert '"call":"GET /api/warehouses/list"' in text and "nuorder.unreachable" in text
    for secret in (GOOD.consumer_secret, GOOD.token_secret, "oauth_signature"):
        assert secret not in text
    assert nuorder_sandbox.state.products == {}  # nothing half-taken
