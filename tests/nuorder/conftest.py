"""NuOrder's fixtures: its sandbox over loopback HTTP, scripted through its control routes,
and a gateway whose channel takes NuOrder's orders and places them with a fulfiller (the
scripted fake connector, or the ShipStation sandbox in the end-to-end test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from connectors.nuorder.sandbox import SandboxState, create_app, state_of
from connectors.nuorder.signing import Credentials
from gateway import config as config_mod
from gateway.app import Gateway
from tests.conftest import ENV, FAKE_TOKEN, GatewayUnderTest, base_doc

GOOD = Credentials("nu-key", "nu-secret", "nu-token", "nu-token-secret")
NU_ENV = {**ENV, "NU_KEY": GOOD.consumer_key, "NU_SECRET": GOOD.consumer_secret,
          "NU_TOKEN": GOOD.token, "NU_TOKEN_SECRET": GOOD.token_secret}
CHANNEL = {"name": "wholesale", "internal": False, "source_connector": "nuorder",
           "push_fulfillment_updates": True, "oms": {"connector": "wms"}}


class NuOrderSandbox:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.url = str(server.make_url("")).rstrip("/")
        self.session = session

    @property
    def state(self) -> SandboxState:
        return state_of(self.server.app)  # type: ignore[arg-type]

    async def control(self, path: str, body: Any = None) -> Any:
        async with self.session.post(f"{self.url}/_sandbox{path}", json=body or {}) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def product(self, style: str, color: str, sizes: dict[str, str | None],
                      **fields: Any) -> dict[str, Any]:
        """A product with a size -> UPC map (None: a size with no UPC)."""
        return await self.control("/products", {
            "style_number": style, "color": color, "season": "FW26", "name": f"{style} {color}",
            "brand_id": "B1", "active": True, "archived": False,
            "pricing": {"USD": {"wholesale": 40, "retail": 90}},
            "sizes": [{"size": s, "upc": upc, "_id": f"sku-{style}-{color}-{s}"}
                      for s, upc in sizes.items()], **fields})

    async def order(self, number: str, lines: list[tuple[dict[str, Any], dict[str, int]]],
                    status: str = "approved", **fields: Any) -> dict[str, Any]:
        """An order of products, each with {size: quantity}."""
        return await self.control("/orders", {
            "order_number": number, "status": status, "currency_code": "USD",
            "customer_po_number": f"PO-{number}",
            "retailer": {"_id": "r1", "retailer_name": "Boutique One", "retailer_code": "BOUT1",
                         "buyer_name": "Ann Buyer"},
            "shipping_address": {"line_1": "1 High St", "city": "Leeds", "zip": "LS1 1AA",
                                 "country": "gb"},
            "line_items": [{"product": {k: p[k] for k in ("_id", "style_number", "color",
                                                          "season", "brand_id")},
                            "warehouse": "default", "prebook": False,
                            "sizes": [{"size": s, "quantity": q, "price": 40,
                                       "upc": next((z["upc"] for z in p["sizes"]
                                                    if z["size"] == s), None)}
                                      for s, q in sizes.items()]}
                           for p, sizes in lines], **fields})

    def calls(self, method: str, path_prefix: str) -> int:
        return self.state.calls(method, path_prefix)


@pytest.fixture
async def nuorder_sandbox(aiohttp_server: Any, http: aiohttp.ClientSession
                          ) -> NuOrderSandbox:
    return NuOrderSandbox(await aiohttp_server(create_app(GOOD)), http)


def nuorder_doc(db_path: Path, sandbox_url: str, channels: list[dict[str, Any]] | None = None,
                fulfiller: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    wms = fulfiller or {"name": "wms", "type": "fake", "base_url": "http://127.0.0.1:9",
                        "token_env": "FAKE_TOKEN"}
    return {
        **base_doc(db_path),
        "connectors": [{"name": "nuorder", "type": "nuorder", "base_url": sandbox_url,
                        "consumer_key_env": "NU_KEY", "consumer_secret_env": "NU_SECRET",
                        "token_env": "NU_TOKEN", "token_secret_env": "NU_TOKEN_SECRET",
                        "request_timeout_seconds": 5, **options}, wms],
        "channels": [CHANNEL] if channels is None else channels,
    }


class NuOrderGateway(GatewayUnderTest):
    async def poll_feed(self, feed: str) -> dict[str, Any]:
        return await self.call("POST", f"/api/v1/connectors/nuorder/poll?feed={feed}")

    async def records(self, kind: str) -> list[dict[str, Any]]:
        return (await self.call("GET", f"/api/v1/connectors/nuorder/records/{kind}"))["items"]

    async def take_orders(self) -> list[dict[str, Any]]:
        """Poll the products, then the orders (their sizes map from the products kept);
        the FOs there are once the inbox is processed."""
        await self.poll_feed("products")
        await self.wait_idle()
        await self.poll_feed("orders")
        await self.wait_idle()
        return (await self.call("GET", "/api/v1/fulfillment-orders"))["items"]

    async def origin_link(self, fo_id: str) -> dict[str, Any]:
        """The FO's link to NuOrder: what was pushed there, per shipment."""
        [origin] = [ln for ln in (await self.fo(fo_id))["links"] if ln["role"] == "origin"]
        return origin

    async def partner_orders(self, query: str = "") -> list[dict[str, Any]]:
        return (await self.call("GET", f"/api/v1/partner-orders?connector=nuorder{query}")
                )["items"]

    async def ship(self, fo_id: str, shipment_id: str, lines: list[tuple[str, int]],
                   tracking: str, status: str = "shipped", updated_at: str | None = None
                   ) -> None:
        """The fulfiller (fake) tells of a shipment of the FO, by webhook."""
        record = {"id": shipment_id, "order_refs": [["fulfillment_order_id", fo_id]],
                  "lines": [list(x) for x in lines], "status": status, "carrier": "ups",
                  "tracking_numbers": [tracking],
                  "updated_at": updated_at or ("2026-12-01T10:00:00Z" if status == "shipped"
                                               else "2026-12-01T11:00:00Z")}
        async with self.session.post(
                f"{self.url}/webhooks/wms", json={"kind": "shipment", "record": record},
                headers={"X-Fake-Token": FAKE_TOKEN,
                         "X-Fake-Delivery": f"{shipment_id}:{status}"}) as resp:
            assert resp.status == 200, await resp.text()


@pytest.fixture
async def start_nuorder(aiohttp_server: Any, http: aiohttp.ClientSession, tmp_path: Path,
                        nuorder_sandbox: NuOrderSandbox
                        ) -> AsyncIterator[Callable[..., Awaitable[NuOrderGateway]]]:
    async def start(env: dict[str, str] | None = None, **options: Any) -> NuOrderGateway:
        doc = nuorder_doc(tmp_path / "g.sqlite3", nuorder_sandbox.url, **options)
        cfg = config_mod.parse(doc, {**NU_ENV, **(env or {})})
        gateway = Gateway(cfg, first_poll_delay_seconds=3600.0)
        server = await aiohttp_server(gateway.web_app())
        return NuOrderGateway(server, gateway, http, Path(cfg.storage.path))

    yield start


def nuorder_toml(path: Path, sandbox_url: str, style: str = "rfc5849") -> None:
    """A config file with one NuOrder connector, for a command run as its own process."""
    path.write_text(f"""
[storage]
path = "{path.parent / 'g.sqlite3'}"
[[connectors]]
name = "nuorder"
type = "nuorder"
base_url = "{sandbox_url}"
consumer_key_env = "NU_KEY"
consumer_secret_env = "NU_SECRET"
token_env = "NU_TOKEN"
token_secret_env = "NU_TOKEN_SECRET"
signature_style = "{style}"
""")
