"""What the Amazon tests share: the sandbox app, a gateway with the amazon_sp connector on
it, and reads of the gateway's inbound shipments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.amazon_sp.sandbox import create_app, state_of
from tests.conftest import GatewayUnderTest, base_doc

CLIENT, SECRET, REFRESH = "amzn1.application-oa2-client.test", "lwa-secret", "Atzr|refresh"
ENV = {"AMZ_ID": CLIENT, "AMZ_SECRET": SECRET, "AMZ_REFRESH": REFRESH}


@pytest.fixture
def amazon_app() -> Any:
    def make(**options: Any) -> Any:
        return create_app(CLIENT, SECRET, REFRESH, **options)
    return make


def amazon_doc(tmp_path: Any, url: str, subscribers: list[dict[str, Any]] | None = None,
               **options: Any) -> dict[str, Any]:
    """A gateway with one amazon_sp connector on the sandbox at `url`."""
    return {**base_doc(tmp_path / "g.sqlite3"), "connectors": [{
        "name": "amazon", "type": "amazon_sp", "base_url": url,
        "token_url": f"{url}/auth/o2/token", "client_id_env": "AMZ_ID",
        "client_secret_env": "AMZ_SECRET", "refresh_token_env": "AMZ_REFRESH",
        "request_timeout_seconds": 5, "end_lag_minutes": 0, **options}],
        "subscribers": subscribers or []}


async def start(start_fake: Any, aiohttp_server: Any, tmp_path: Any, app: Any,
                subscribers: list[dict[str, Any]] | None = None,
                **options: Any) -> tuple[GatewayUnderTest, Any, str]:
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    gw = await start_fake(amazon_doc(tmp_path, url, subscribers, **options), env=ENV)
    return gw, state_of(app), url


def add(state: Any, body: dict[str, Any], ago_seconds: float = 5.0) -> None:
    """A shipment, last updated a few seconds ago (a date range's end is to the second)."""
    state.add(body)
    state.updated[body["ShipmentId"]] = (datetime.now(UTC)
                                         - timedelta(seconds=ago_seconds)).isoformat()


def changed(state: Any, shipment_id: str) -> None:
    """Amazon changed the shipment a moment ago (inside the next date range, which ends at a
    whole second)."""
    state.updated[shipment_id] = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()


async def poll(gw: GatewayUnderTest, feed: str) -> dict[str, Any]:
    return (await gw.call("POST", f"/api/v1/connectors/amazon/poll?feed={feed}"))["feeds"][feed]


async def sync(gw: GatewayUnderTest, *feeds: str) -> None:
    """Poll each feed (both: the header, then the items) and wait for what it read to be
    applied."""
    for feed in feeds or ("shipments", "receiving"):
        await poll(gw, feed)
        await gw.wait_idle()


async def records(gw: GatewayUnderTest, query: str = "") -> dict[str, Any]:
    """The inbound shipments the gateway keeps, by id, each with its items by SKU."""
    page = await gw.call("GET", f"/api/v1/inbound-shipments{query}")
    return {r["id"]: {**r, "items": {i["sku"]: i for i in r["items"]}} for r in page["items"]}
