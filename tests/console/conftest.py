"""The console's fixtures: a gateway on the fake connector type with operators configured,
and an HTTP client that keeps cookies as a browser does."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import FAKE_TOKEN, GatewayUnderTest, fake_doc

ALICE, BOB = "alice-token-0123456789", "bob-token-9876543210xyz"
CONSOLE_ENV = {"CONSOLE_TOKENS": f"alice:{ALICE},bob:{BOB}"}
CHANNEL = {"name": "web", "internal": True}
SHOP = {"name": "shop", "internal": True, "oms": {"connector": "wms"}}  # pushes to wms


def console_doc(db_path: Path, **console: Any) -> dict[str, Any]:
    doc = fake_doc(db_path, "wms", channels=[CHANNEL, SHOP])
    doc["console"] = {"tokens_env": "CONSOLE_TOKENS", **console}
    return doc


class Operator:
    """A browser-like client: cookies kept, forms posted with their CSRF token."""

    def __init__(self, gw: GatewayUnderTest, session: aiohttp.ClientSession) -> None:
        self.gw, self.session = gw, session
        self.csrf = ""

    async def get(self, path: str, expect: int = 200, **kwargs: Any) -> str:
        async with self.session.get(self.gw.url + path, allow_redirects=kwargs.pop(
                "follow", True), **kwargs) as resp:
            text = await resp.text()
            assert resp.status == expect, (resp.status, text[:500])
            found = re.search(r'name="csrf" value="([^"]+)"', text)
            if found:
                self.csrf = found.group(1)
            return text

    async def post(self, path: str, form: dict[str, str] | None = None, expect: int = 200,
                   csrf: bool = True, follow: bool = True) -> tuple[int, str, str]:
        data = {**({"csrf": self.csrf} if csrf else {}), **(form or {})}
        async with self.session.post(self.gw.url + path, data=data,
                                     allow_redirects=follow) as resp:
            text = await resp.text()
            assert resp.status == expect, (resp.status, text[:500])
            return resp.status, str(resp.url), text

    async def login(self, token: str = ALICE, expect: int = 200) -> str:
        page = await self.get("/console/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
        _, url, text = await self.post("/console/login", {"token": token, "nonce": nonce},
                                       expect=expect, csrf=False)
        await self.get("/console/") if expect == 200 else None
        return text

    async def shipment(self, shipment_id: str, refs: list[list[str]],
                       lines: list[tuple[str, int]], tracking: str = "1Z-X") -> None:
        record = {"id": shipment_id, "order_refs": refs, "lines": [list(x) for x in lines],
                  "tracking_numbers": [tracking], "carrier": "ups",
                  "updated_at": "2026-12-01T10:00:00Z"}
        async with self.session.post(
                f"{self.gw.url}/webhooks/wms", json={"kind": "shipment", "record": record},
                headers={"X-Fake-Token": FAKE_TOKEN, "X-Fake-Delivery": shipment_id}) as resp:
            assert resp.status == 200, await resp.text()
        await self.gw.wait_idle()


@pytest.fixture
async def operator_client() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies for an IP address host (127.0.0.1), as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
async def console(start_fake: Any, tmp_path: Path, operator_client: aiohttp.ClientSession
                  ) -> Callable[..., Awaitable[Operator]]:
    async def start(**console_options: Any) -> Operator:
        gw = await start_fake(console_doc(tmp_path / "g.sqlite3", **console_options),
                              env=CONSOLE_ENV)
        return Operator(gw, operator_client)

    return start


CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)  # looked at once, at collection
# This machine's Chromium, headless: no sandbox (root), and nothing that reaches out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if not HAVE_CHROMIUM:
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: never a silent skip there
        pytest.skip(message)

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def browser_gateway(aiohttp_server: Any, http: aiohttp.ClientSession, tmp_path: Path
                          ) -> GatewayUnderTest:
    """One backend is enough for the browser: the routes' storage is tested on both."""
    from gateway import config as config_mod
    from gateway.app import Gateway
    from tests.conftest import ENV

    cfg = config_mod.parse(console_doc(tmp_path / "g.sqlite3"), {**ENV, **CONSOLE_ENV})
    gateway = Gateway(cfg, first_poll_delay_seconds=3600.0)
    server = await aiohttp_server(gateway.web_app())
    return GatewayUnderTest(server, gateway, http, Path(cfg.storage.path))
