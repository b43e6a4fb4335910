"""ShipStation's own fixtures: its sandbox over loopback HTTP and a gateway talking to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from connectors.shipstation.client import basic_auth
from connectors.shipstation.sandbox import SandboxState, create_app, sandbox_state
from gateway import config as config_mod
from gateway.app import Gateway
from tests.conftest import ENV, GatewayUnderTest, base_doc

SS_KEY, SS_SECRET, SS_HOOK_TOKEN = "ss-key-123", "ss-secret-456", "hook-token-789"
SS_ENV = {**ENV, "SS_KEY": SS_KEY, "SS_SECRET": SS_SECRET, "SS_HOOK": SS_HOOK_TOKEN}


class ShipStationGateway(GatewayUnderTest):
    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/shipstation?token={SS_HOOK_TOKEN}"


def gateway_doc(db_path: Path, sandbox_url: str, **connector: Any) -> dict[str, Any]:
    return {
        **base_doc(db_path),
        "connectors": [{
            "name": "shipstation", "type": "shipstation", "base_url": sandbox_url,
            "allowed_resource_origin": r"http://127\.0\.0\.1:\d+",
            "api_key_env": "SS_KEY", "api_secret_env": "SS_SECRET",
            "webhook_token_env": "SS_HOOK", "poll_overlap_minutes": 60,
            "request_timeout_seconds": 5, **connector,
        }],
    }


def write_config(path: Path, db: Path, sandbox_url: str, port: int = 0,
                 **connector: str | int) -> None:
    """A config.toml for a gateway run as a separate process, against the sandbox."""
    extra = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in connector.items())
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
[storage]
path = "{db}"
[retry]
attempts = 5
schedule_seconds = [0.2]
[[connectors]]
name = "shipstation"
type = "shipstation"
base_url = "{sandbox_url}"
allowed_resource_origin = "http://127\\\\.0\\\\.0\\\\.1:\\\\d+"
api_key_env = "SS_KEY"
api_secret_env = "SS_SECRET"
webhook_token_env = "SS_HOOK"
{extra}""")


class Sandbox:
    """The ShipStation sandbox over loopback HTTP, scripted through its control surface."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.url = str(server.make_url("")).rstrip("/")
        self.session = session
        self.auth = {"Authorization": basic_auth(SS_KEY, SS_SECRET)}

    @property
    def state(self) -> SandboxState:
        return sandbox_state(self.server.app)

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.post(f"{self.url}/_sandbox{path}", json=body or {}) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def order(self, order_number: str, items: list[tuple[str, int]],
                    order_key: str | None = None) -> dict[str, Any]:
        body = {"orderNumber": order_number, "items": [
            {"lineItemKey": str(i), "sku": sku, "name": sku, "quantity": qty}
            for i, (sku, qty) in enumerate(items, start=1)]}
        if order_key:
            body["orderKey"] = order_key
        return await self.control("/orders", body)

    async def ship(self, order_id: int, items: list[tuple[str, int]] | None = None,
                   notify: bool = True, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"notify": notify, **extra}
        if items is not None:
            body["items"] = [{"sku": s, "quantity": q} for s, q in items]
        return await self.control(f"/orders/{order_id}/ship", body)

    async def subscribe(self, target_url: str, event: str = "SHIP_NOTIFY") -> None:
        async with self.session.post(f"{self.url}/webhooks/subscribe", headers=self.auth,
                                     json={"target_url": target_url, "event": event}) as resp:
            assert resp.status == 201, await resp.text()


@pytest.fixture
async def sandbox(aiohttp_server: Any, http: aiohttp.ClientSession) -> Sandbox:
    server = await aiohttp_server(create_app(SS_KEY, SS_SECRET))
    return Sandbox(server, http)


@pytest.fixture
def start_gateway(aiohttp_server: Any, http: aiohttp.ClientSession, tmp_path: Path,
                  sandbox: Sandbox) -> Callable[..., Awaitable[ShipStationGateway]]:
    async def start(doc: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                    first_poll_delay: float = 3600.0, **connector: Any) -> GatewayUnderTest:
        db_path = tmp_path / "gateway.sqlite3"
        cfg = config_mod.parse(doc or gateway_doc(db_path, sandbox.url, **connector),
                               {**SS_ENV, **(env or {})})
        gateway = Gateway(cfg, first_poll_delay_seconds=first_poll_delay)
        server = await aiohttp_server(gateway.web_app())
        return ShipStationGateway(server, gateway, http, Path(cfg.storage.path))

    return start


@pytest.fixture
async def gw(start_gateway: Callable[..., Awaitable[ShipStationGateway]]) -> ShipStationGateway:
    return await start_gateway()
