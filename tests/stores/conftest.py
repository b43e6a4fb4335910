"""Store platforms' fixtures: their sandboxes over loopback HTTP, scripted through their control
routes, and a gateway (either storage backend) whose marketplace channel takes a buyer's orders
and places them with a seller's store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from connectors.bigcommerce.sandbox import BigCommerceState
from connectors.bigcommerce.sandbox import create_app as bigcommerce_app
from connectors.bigcommerce.sandbox import state_of as bigcommerce_state
from connectors.magento2.sandbox import MagentoState
from connectors.magento2.sandbox import create_app as magento_app
from connectors.magento2.sandbox import state_of as magento_state
from connectors.shopify.sandbox import ShopifyState
from connectors.shopify.sandbox import create_app as shopify_app
from connectors.shopify.sandbox import state_of as shopify_state
from connectors.woocommerce.sandbox import WooState
from connectors.woocommerce.sandbox import create_app as woocommerce_app
from connectors.woocommerce.sandbox import state_of as woocommerce_state
from tests import fake_partner
from tests.conftest import FAKE_TOKEN, GatewayUnderTest, base_doc

BC_TOKEN, BC_SECRET = "bc-token-for-tests", "bc-client-secret-for-tests"
SHOP_TOKEN, SHOP_SECRET = "shpat_for_tests", "shopify-client-secret-for-tests"
WOO_KEY, WOO_SECRET, WOO_HOOK = "ck_for_tests", "cs_for_tests", "woo-hook-secret-for-tests"
MAGENTO_TOKEN = "magento-token-for-tests"
STORE_ENV = {"MAGENTO_TOKEN": MAGENTO_TOKEN, "BC_TOKEN": BC_TOKEN, "BC_SECRET": BC_SECRET, "SHOP_TOKEN": SHOP_TOKEN,
             "SHOP_SECRET": SHOP_SECRET, "WOO_KEY": WOO_KEY, "WOO_SECRET": WOO_SECRET,
             "WOO_HOOK": WOO_HOOK}


def soon(value: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """A wait_for check of a plain condition (a sandbox's state, what a fake was sent)."""
    async def check() -> Any:
        await asyncio.sleep(0)
        return value()
    return check


def sent(name: str, kind: str) -> list[dict[str, Any]]:
    """What a (fake) partner was sent of one kind: its fulfilments, not the status updates."""
    return [m.payload for m in fake_partner.partner(name).calls if m.kind == kind
            and m.payload.get("type") != "status_changed"]


class Sandbox:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.url = str(server.make_url("")).rstrip("/")
        self.session = session

    async def control(self, path: str, body: Any = None) -> Any:
        async with self.session.post(f"{self.url}/_sandbox{path}", json=body or {}) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()


class BigCommerceSandbox(Sandbox):
    @property
    def state(self) -> BigCommerceState:
        return bigcommerce_state(self.server.app)  # type: ignore[arg-type]

    def order_of(self, fo_id: str) -> dict[str, Any]:
        [order] = [o for o in self.state.orders.values() if o.get("external_id") == fo_id]
        return order

    def calls(self, method: str, prefix: str) -> int:
        return self.state.calls(method, prefix)


@pytest.fixture
async def bigcommerce(aiohttp_server: Any, http: aiohttp.ClientSession) -> BigCommerceSandbox:
    return BigCommerceSandbox(await aiohttp_server(bigcommerce_app(BC_TOKEN, BC_SECRET)), http)


class ShopifySandbox(Sandbox):
    @property
    def state(self) -> ShopifyState:
        return shopify_state(self.server.app)  # type: ignore[arg-type]

    def order_of(self, fo_id: str) -> dict[str, Any]:
        [order] = [o for o in self.state.orders.values() if o.get("sourceIdentifier") == fo_id]
        return order

    def graphql_calls(self, operation: str | None = None) -> int:
        return sum(1 for r in self.state.requests
                   if operation is None or r.get("operation") == operation)


@pytest.fixture
async def shopify(aiohttp_server: Any, http: aiohttp.ClientSession) -> ShopifySandbox:
    return ShopifySandbox(await aiohttp_server(shopify_app(SHOP_TOKEN, SHOP_SECRET)), http)


def shopify_connector(name: str, url: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "type": "shopify", "base_url": url,
            "access_token_env": "SHOP_TOKEN", "client_secret_env": "SHOP_SECRET",
            "request_timeout_seconds": 5, **options}


class WooSandbox(Sandbox):
    @property
    def state(self) -> WooState:
        return woocommerce_state(self.server.app)  # type: ignore[arg-type]

    def order_of(self, fo_id: str) -> dict[str, Any]:
        from connectors.woocommerce.normalize import FO_META, meta

        [order] = [o for o in self.state.orders.values() if meta(o, FO_META) == fo_id]
        return order


@pytest.fixture
async def woocommerce(aiohttp_server: Any, http: aiohttp.ClientSession) -> WooSandbox:
    return WooSandbox(await aiohttp_server(woocommerce_app(WOO_KEY, WOO_SECRET, WOO_HOOK)),
                      http)


def woocommerce_connector(name: str, url: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "type": "woocommerce", "base_url": url,
            "consumer_key_env": "WOO_KEY", "consumer_secret_env": "WOO_SECRET",
            "webhook_secret_env": "WOO_HOOK", "request_timeout_seconds": 5, **options}


class MagentoSandbox(Sandbox):
    @property
    def state(self) -> MagentoState:
        return magento_state(self.server.app)  # type: ignore[arg-type]

    def order_of(self, fo_id: str) -> dict[str, Any]:
        [order] = [o for o in self.state.orders.values() if o.get("ext_order_id") == fo_id]
        return order


@pytest.fixture
async def magento(aiohttp_server: Any, http: aiohttp.ClientSession) -> MagentoSandbox:
    return MagentoSandbox(await aiohttp_server(magento_app(MAGENTO_TOKEN)), http)


def magento_connector(name: str, url: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "type": "magento2", "base_url": url,
            "access_token_env": "MAGENTO_TOKEN", "request_timeout_seconds": 5, **options}


def bigcommerce_connector(name: str, url: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "type": "bigcommerce", "base_url": url,
            "access_token_env": "BC_TOKEN", "client_secret_env": "BC_SECRET",
            "request_timeout_seconds": 5, **options}


def fake_connector(name: str) -> dict[str, Any]:
    return {"name": name, "type": "fake", "base_url": "http://127.0.0.1:9",
            "token_env": "FAKE_TOKEN"}


def marketplace_doc(db_path: Path, buyer: dict[str, Any], seller: dict[str, Any],
                    **links: Any) -> dict[str, Any]:
    return {**base_doc(db_path), "connectors": [buyer, seller],
            "channels": [{"name": "marketplace", "source_connector": buyer["name"],
                          "push_fulfillment_updates": True,
                          "oms": {"connector": seller["name"]}}],
            **({"links": links} if links else {})}


class MarketplaceGateway(GatewayUnderTest):
    async def poll_feed(self, connector: str, feed: str) -> dict[str, Any]:
        """One run of one feed: its stats (records, requests, ...)."""
        result = await self.call("POST", f"/api/v1/connectors/{connector}/poll?feed={feed}")
        return result["feeds"][feed]

    async def fake_order(self, buyer: str, order_id: str, lines: list[tuple[str, int]],
                         updated_at: str = "2026-12-01T10:00:00Z", **fields: Any) -> None:
        """The (fake) buyer's store tells of an order, by webhook."""
        record = {"id": order_id, "lines": [list(x) for x in lines], "updated_at": updated_at,
                  "order_number": f"B-{order_id}", **fields}
        async with self.session.post(
                f"{self.url}/webhooks/{buyer}", json={"kind": "partner_order", "record": record},
                headers={"X-Fake-Token": FAKE_TOKEN,
                         "X-Fake-Delivery": f"{order_id}:{updated_at}"}) as resp:
            assert resp.status == 200, await resp.text()

    async def only_fo(self) -> dict[str, Any]:
        async def check() -> Any:
            items = (await self.call("GET", "/api/v1/fulfillment-orders"))["items"]
            return items[0] if items else None

        return await self.wait_for(check)

    async def link(self, fo_id: str, role: str) -> dict[str, Any]:
        [link] = [ln for ln in (await self.fo(fo_id))["links"] if ln["role"] == role]
        return link


@pytest.fixture
def start_market(start_fake: Any) -> Callable[..., Awaitable[MarketplaceGateway]]:
    """A gateway on `doc` (either backend, as start_fake), as a MarketplaceGateway."""
    async def start(doc: dict[str, Any]) -> MarketplaceGateway:
        gw = await start_fake(doc, env=STORE_ENV)
        return MarketplaceGateway(gw.server, gw.gateway, gw.session, gw.db_path)

    start.backend = start_fake.backend  # type: ignore[attr-defined]
    return start


async def fake_ship(gw: GatewayUnderTest, seller: str, fo_id: str, shipment_id: str,
                    lines: list[tuple[str, int]], tracking: list[str], status: str = "shipped",
                    updated_at: str = "2026-12-01T10:00:00Z", url: str | None = None) -> None:
    """The (fake) seller's store tells of a fulfilment of the FO, by webhook."""
    record = {"id": shipment_id, "order_refs": [["fulfillment_order_id", fo_id]],
              "lines": [list(x) for x in lines], "status": status, "carrier": "ups",
              "tracking_numbers": tracking, "updated_at": updated_at, "tracking_url": url}
    async with gw.session.post(
            f"{gw.url}/webhooks/{seller}", json={"kind": "shipment", "record": record},
            headers={"X-Fake-Token": FAKE_TOKEN,
                     "X-Fake-Delivery": f"{shipment_id}:{status}:{updated_at}"}) as resp:
        assert resp.status == 200, await resp.text()
