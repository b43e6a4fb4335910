"""The HTTP API: tokens, the error shape, validation, idempotency, paging, OpenAPI, health."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from gateway.api import ROUTES
from tests.conftest import GatewayUnderTest, Sandbox


async def test_every_api_route_needs_a_token(gw: GatewayUnderTest) -> None:
    for method, path, _ in ROUTES:
        if not path.startswith("/api/"):
            continue
        url = gw.url + path.replace("{id}", "x").replace("{name}", "shipstation")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
            async with gw.session.request(method, url, headers=headers, json={}) as resp:
                assert resp.status == 401, (method, path, headers)
                body = await resp.json()
                assert body["error"]["code"] == "unauthorized"


async def test_second_configured_token_works(gw: GatewayUnderTest) -> None:
    async with gw.session.get(f"{gw.url}/api/v1/fulfillment-orders",
                              headers={"Authorization": "Bearer other-token"}) as resp:
        assert resp.status == 200


async def test_openapi_is_valid_and_matches_the_routes(gw: GatewayUnderTest) -> None:
    document = await gw.call("GET", "/api/v1/openapi.json")
    validate(document)
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    served = {(r.method, r.resource.canonical) for r in gw.server.app.router.routes()
              if r.method not in ("HEAD", "*")}  # "*": the catch-all answering 404 / 405
    assert documented == served
    # Every event a subscriber can ask for is documented, with its data fields.
    from gateway.names import EVENT_TYPES

    assert sorted(document["webhooks"]) == sorted(EVENT_TYPES)
    status_changed = document["webhooks"]["fulfillment_order.status_changed"]["post"]
    schema = status_changed["requestBody"]["content"]["application/json"]["schema"]
    assert {"old_status", "new_status", "lines"} <= set(schema["properties"]["data"]["properties"])


async def test_create_is_validated(gw: GatewayUnderTest) -> None:
    bad = [
        ({}, "lines"), ({"lines": []}, "lines"),
        ({"lines": [{"sku": "", "quantity": 1}]}, r"lines\[0\]\.sku"),
        ({"lines": [{"sku": "A", "quantity": 0}]}, r"lines\[0\]\.quantity"),
        ({"lines": [{"sku": "A", "quantity": 1.5}]}, r"lines\[0\]\.quantity"),
        ({"lines": [{"sku": "A", "quantity": True}]}, r"lines\[0\]\.quantity"),
        ({"lines": [{"sku": "A", "quantity": 1}], "id": "has space"}, "id"),
        ({"lines": [{"sku": "A", "quantity": 1}], "colour": "red"}, "unknown field"),
        ({"lines": [{"sku": "A", "quantity": 1}], "ship_to": "x"}, "ship_to"),
        ({"lines": [{"sku": "A", "quantity": 1, "line_id": "1"},
                    {"sku": "B", "quantity": 1, "line_id": "1"}]}, r"lines\[1\]\.line_id"),
    ]
    for body, message in bad:
        answer = await gw.call("POST", "/api/v1/fulfillment-orders", body, expect=400)
        assert answer["error"]["code"] == "bad_request"
        assert re.search(message, answer["error"]["message"]), (body, answer)
    async with gw.session.post(f"{gw.url}/api/v1/fulfillment-orders", data=b"{oops",
                               headers=gw.headers) as resp:
        assert resp.status == 400
    assert gw.sql("SELECT COUNT(*) FROM fulfillment_orders") == [(0,)]


async def test_create_with_client_id_is_idempotent(gw: GatewayUnderTest) -> None:
    body = {"id": "order-42", "channel": "web", "order_number": "42",
            "lines": [{"sku": "A", "quantity": 2}], "custom_fields": {"gift": True}}
    first = await gw.call("POST", "/api/v1/fulfillment-orders", body, expect=201)
    again = await gw.call("POST", "/api/v1/fulfillment-orders", body, expect=200)
    assert first == again and first["id"] == "order-42"
    changed = await gw.call("POST", "/api/v1/fulfillment-orders",
                            {**body, "lines": [{"sku": "A", "quantity": 3}]}, expect=409)
    assert changed["error"]["code"] == "conflict"
    assert [t["kind"] for t in first["timeline"]] == ["created"]


async def test_get_unknown_is_404_in_the_error_shape(gw: GatewayUnderTest) -> None:
    for path in ("/api/v1/fulfillment-orders/nope", "/api/v1/shipments/nope",
                 "/api/v1/no-such-route"):
        answer = await gw.call("GET", path, expect=404)
        assert answer["error"]["code"] == "not_found"
    await gw.call("POST", "/api/v1/fulfillment-orders/nope/cancel", expect=404)
    answer = await gw.call("DELETE", "/api/v1/channels", expect=405)
    assert answer["error"]["code"] == "method_not_allowed" and "GET" in answer["error"]["message"]
    async with gw.session.get(f"{gw.url}/nothing/here") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    async with gw.session.get(f"{gw.url}/api/v1/no-such-route") as resp:
        assert resp.status == 401  # without a token, nothing about what exists
    async with gw.session.get(f"{gw.url}/webhooks/shipstation") as resp:
        assert resp.status == 405


async def test_list_filters_and_pages(gw: GatewayUnderTest, sandbox: Sandbox) -> None:
    ids = [(await gw.create_fo([("A", 1)], order_number=f"L{i}"))["id"] for i in range(5)]
    cancelled = await gw.call("POST", f"/api/v1/fulfillment-orders/{ids[0]}/cancel")
    assert cancelled["status"] == "cancelled"
    again = await gw.call("POST", f"/api/v1/fulfillment-orders/{ids[0]}/cancel")
    assert [t["to_status"] for t in again["timeline"] if t["kind"] == "status_changed"] == [
        "cancelled"]

    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await gw.call("GET", f"/api/v1/fulfillment-orders{query}")
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    unfulfilled = await gw.call("GET", "/api/v1/fulfillment-orders?status=unfulfilled")
    assert sorted(i["id"] for i in unfulfilled["items"]) == sorted(ids[1:])
    since = cancelled["updated_at"]
    recent = await gw.call("GET", f"/api/v1/fulfillment-orders?updated_since={since}")
    assert ids[0] in [i["id"] for i in recent["items"]]
    for query in ("status=done", "limit=0", "limit=abc", "cursor=%%%", "updated_since=yesterday"):
        answer = await gw.call("GET", f"/api/v1/fulfillment-orders?{query}", expect=400)
        assert answer["error"]["code"] == "bad_request"


async def test_shipments_listing_by_fo(gw: GatewayUnderTest, sandbox: Sandbox) -> None:
    fo = await gw.create_fo([("A", 2)], order_number="S1")
    order = await sandbox.order("S1", [("A", 2)], order_key=fo["id"])
    await sandbox.ship(order["orderId"], [("A", 1)], notify=False)
    await sandbox.ship(order["orderId"], [("A", 1)], notify=False)
    await gw.poll()
    await gw.wait_status(fo["id"], "fulfilled")
    page = await gw.call("GET", f"/api/v1/shipments?fulfillment_order_id={fo['id']}")
    assert len(page["items"]) == 2
    one = await gw.call("GET", f"/api/v1/shipments/{page['items'][0]['id']}")
    assert one["allocations"] == [{"fo_id": fo["id"], "line_id": "1", "sku": "A", "quantity": 1}]
    assert one["tracking_numbers"] and one["carrier"] == "ups"
    everything = await gw.call("GET", "/api/v1/shipments?limit=1")
    assert len(everything["items"]) == 1 and everything["next_cursor"]


async def test_health_readiness_metrics(gw: GatewayUnderTest) -> None:
    assert (await gw.call("GET", "/healthz")) == {"status": "ok"}
    ready = await gw.call("GET", "/readyz")
    assert ready["status"] == "ready" and all(ready["checks"].values())
    async with gw.session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    for name in ("gateway_webhooks_received_total", "gateway_inbox_depth",
                 "gateway_inbox_oldest_age_seconds", "gateway_polls_total",
                 "gateway_partner_rate_limited_total", "gateway_reconcile_duration_seconds"):
        assert name in text


async def test_connectors_listing(gw: GatewayUnderTest) -> None:
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    assert item["name"] == "shipstation" and item["enabled"]
    assert item["webhooks"] and item["operations"] == ["cancel_order", "push_order"]
    assert item["rate_limit"]["budget_per_window"] == 40
    [feed] = item["feeds"]
    assert feed["name"] == "shipments" and feed["enabled"] and feed["interval_minutes"] == 15
    assert feed["last_poll_at"] is None and feed["cursor"] is None
    await gw.poll()
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    [feed] = item["feeds"]
    assert feed["last_poll_at"] and feed["cursor"] and not feed["running"]
    await gw.call("POST", "/api/v1/connectors/shipstation/poll?feed=shipments")
    missing = await gw.call("POST", "/api/v1/connectors/shipstation/poll?feed=nope", expect=404)
    assert "shipments" in missing["error"]["message"]  # names the feeds it has
    await gw.call("POST", "/api/v1/connectors/shipstation/poll?fed=x", expect=400)


async def test_scheduler_polls_by_itself(start_gateway, sandbox: Sandbox) -> None:
    gw = await start_gateway(first_poll_delay=0.2)
    fo = await gw.create_fo([("A", 1)], order_number="P1")
    order = await sandbox.order("P1", [("A", 1)], order_key=fo["id"])
    await sandbox.ship(order["orderId"], notify=False)
    await gw.wait_status(fo["id"], "fulfilled", within=10)
    [item] = (await gw.call("GET", "/api/v1/connectors"))["items"]
    assert item["feeds"][0]["last_poll_at"] is not None
