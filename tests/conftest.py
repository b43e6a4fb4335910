"""Shared fixtures: a gateway on loopback on the scripted fake connector type, a real SQLite
file each, and a subscriber receiving signed events. ShipStation's own fixtures (its sandbox)
are in tests/shipstation/conftest.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from gateway import config as config_mod
from gateway import logs
from gateway.app import Gateway
from tests import fake_partner

API_TOKEN = "test-api-token"
ENV = {"GATEWAY_API_TOKENS": f"other-token,{API_TOKEN}"}
SUBSCRIBER_SECRET = "whsec_" + base64.b64encode(b"subscriber-secret-for-tests-32b!").decode()
ENV["SUB_SECRET"] = SUBSCRIBER_SECRET

logs.configure("WARNING")
BACKEND_NAMES = ("sqlite", "postgresql")


class Databases:
    """Fresh databases on the run's PostgreSQL server, one per key, dropped at the end."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.dsns: dict[Any, str] = {}

    async def dsn_for(self, key: Any) -> str:
        import asyncpg

        if key not in self.dsns:
            name = f"test_{len(self.dsns)}_{abs(hash((key, time.time())))}"
            admin = await asyncpg.connect(self.server.dsn)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            self.dsns[key] = self.server.dsn.rsplit("/", 1)[0] + f"/{name}"
        return self.dsns[key]

    async def drop(self) -> None:
        import asyncpg

        if not self.dsns:
            return
        admin = await asyncpg.connect(self.server.dsn)
        try:
            for dsn in self.dsns.values():
                name = dsn.rsplit("/", 1)[1]
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
# The scripted connector type of the core's tests: `type = "fake"` in a config.
sys.modules.setdefault("connectors.fake", fake_partner)
FAKE_TOKEN = "fake-hook-token"
ENV["FAKE_TOKEN"] = FAKE_TOKEN


def fake_doc(db_path: Path, *names: str, channels: list[dict[str, Any]] | None = None,
             subscribers: list[dict[str, Any]] | None = None,
             **connector: Any) -> dict[str, Any]:
    """A gateway with only fake connectors: no real partner's package involved."""
    return {
        **base_doc(db_path),
        "connectors": [{"name": name, "type": "fake", "base_url": "http://127.0.0.1:9",
                        "token_env": "FAKE_TOKEN", **connector} for name in names or ("fake",)],
        "channels": channels or [],
        "subscribers": subscribers or [],
    }


@pytest.fixture(autouse=True)
def _fresh_fake_partners() -> None:
    fake_partner.PARTNERS.clear()


def base_doc(db_path: Path) -> dict[str, Any]:
    """What every test gateway shares: loopback, a small body limit, fast retries."""
    return {
        "server": {"host": "127.0.0.1", "port": 0, "max_body_bytes": 64 * 1024},
        "storage": {"path": str(db_path)},
        "api": {"tokens_env": "GATEWAY_API_TOKENS"},
        "retry": {"attempts": 3, "schedule_seconds": [0.05, 0.1], "jitter": 0.1},
        "worker": {"concurrency": 4, "batch_size": 32},
    }


class GatewayUnderTest:
    def __init__(self, server: TestServer, gateway: Gateway, session: aiohttp.ClientSession,
                 db_path: Path) -> None:
        self.server = server
        self.gateway = gateway
        self.url = str(server.make_url("")).rstrip("/")
        self.session = session
        self.db_path = db_path
        self.headers = {"Authorization": f"Bearer {API_TOKEN}"}

    async def call(self, method: str, path: str, body: Any = None,
                   expect: int | None = 200) -> Any:
        async with self.session.request(method, f"{self.url}{path}", json=body,
                                        headers=self.headers) as resp:
            payload = await resp.json(content_type=None)
            if expect is not None:
                assert resp.status == expect, (resp.status, payload)
            return payload

    async def create_fo(self, lines: list[tuple[str, int]], **fields: Any) -> dict[str, Any]:
        body = {"lines": [{"sku": s, "quantity": q} for s, q in lines], **fields}
        return await self.call("POST", "/api/v1/fulfillment-orders", body, expect=201)

    async def fo(self, fo_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/api/v1/fulfillment-orders/{fo_id}")

    async def poll(self, connector: str | None = None) -> dict[str, Any]:
        """Poll every feed of `connector` (the first configured one when not named)."""
        name = connector or next(iter(self.gateway.connectors))
        return await self.call("POST", f"/api/v1/connectors/{name}/poll")

    async def wait_for(self, check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.05)

    async def wait_status(self, fo_id: str, status: str, within: float = 10.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            fo = await self.fo(fo_id)
            return fo if fo["status"] == status else None

        return await self.wait_for(check, within)

    async def wait_idle(self, within: float = 10.0) -> None:
        """Until the inbox has nothing pending or in progress."""
        async def check() -> bool:
            return (await self.gateway.storage.inbox_stats())["depth"] == 0

        await self.wait_for(check, within)

    async def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A statement on the gateway's own database, whichever backend (`?` placeholders)."""
        return await storage_sql(self.gateway.storage, query, params)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(params=BACKEND_NAMES)
async def start_fake(request: Any, aiohttp_server: Any, http: aiohttp.ClientSession,
                     tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[GatewayUnderTest]]]:
    """A gateway on the fake connector type only; `doc` from fake_doc. Each test runs on
    both backends: on PostgreSQL the doc's storage path names a fresh database on the run's
    server (the same one again for a restart)."""
    databases = Databases(request.getfixturevalue("pg_server")) \
        if request.param == "postgresql" else None

    async def start(doc: dict[str, Any], first_poll_delay: float = 3600.0,
                    env: dict[str, str] | None = None) -> GatewayUnderTest:
        env = {**ENV, **(env or {})}
        if databases is not None:
            dsn = await databases.dsn_for(doc["storage"]["path"])
            doc = {**doc, "storage": {"backend": "postgresql", "dsn_env": "TEST_DATABASE_URL",
                                      "pool_size": 6}}
            env = {**env, "TEST_DATABASE_URL": dsn}
        cfg = config_mod.parse(doc, env)
        gateway = Gateway(cfg, first_poll_delay_seconds=first_poll_delay)
        server = await aiohttp_server(gateway.web_app())
        servers.append(server)
        return GatewayUnderTest(server, gateway, http, Path(cfg.storage.path))

    servers: list[TestServer] = []
    start.backend = request.param  # type: ignore[attr-defined]
    yield start
    if databases is not None:
        for server in servers:  # stopped before their databases go
            await server.close()
        await databases.drop()


class Receiver:
    """An internal service subscribed to events: records every delivery; can go down."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes, int]] = []
        self.answer = 200
        self.answer_headers: dict[str, str] = {}
        self.chunked = False  # answer with a chunked body
        self.refuse_containing = b""  # answer 500 to bodies that contain this
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = 500 if self.refuse_containing and self.refuse_containing in body \
            else self.answer
        self.deliveries.append((dict(request.headers), body, answer))
        text = "ok" if answer < 300 else f"refused with {answer}"
        if self.chunked:
            response = web.StreamResponse(status=answer, headers=self.answer_headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (text[:3], text[3:], " (in chunks)"):
                await response.write(part.encode())
            await response.write_eof()
            return response
        return web.Response(status=answer, text=text, headers=self.answer_headers)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Accepted events, verified, in arrival order; a bad signature fails the test here."""
        out = []
        for headers, body, answer in self.deliveries:
            if answer >= 300:
                continue
            event = Webhook(SUBSCRIBER_SECRET).verify(body, headers)
            if event_type is None or event["type"] == event_type:
                out.append(event)
        return out


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


SKU = "TSHIRT-BLK-M"


async def wait_pushed(gw: GatewayUnderTest, fo_id: str, within: float = 10.0,
                      kind: str = "push_order") -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        fo = await gw.fo(fo_id)
        done = [o for o in fo["outbound"] if o["kind"] == kind and o["status"] == "sent"]
        return fo if done else None

    return await gw.wait_for(check, within)


async def wait_events(receiver: Receiver, count: int, event_type: str | None = None,
                      within: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while len(receiver.events(event_type)) < count:
        assert time.monotonic() < deadline, [e["type"] for e in receiver.events()]
        await asyncio.sleep(0.05)
    return receiver.events(event_type)


@pytest.fixture(scope="session")
def pg_server() -> Any:
    """One throwaway PostgreSQL server for the whole run (tests/pg_server.py)."""
    from tests.pg_server import PgServer

    server = PgServer().start()
    yield server
    server.stop()




@pytest.fixture(params=BACKEND_NAMES)
async def open_storage(request: Any, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """`await open_storage(tmp_path)`: a migrated, opened storage of the test's backend,
    the same database each time for the same directory (a restart opens it again); on
    PostgreSQL a fresh database on the run's server, dropped afterwards. Closing it is the
    test's."""
    from storage.postgres import PostgresStorage
    from storage.sqlite import SqliteStorage

    databases = Databases(request.getfixturevalue("pg_server")) \
        if request.param == "postgresql" else None

    async def open_(directory: Path) -> Any:
        storage: Any = SqliteStorage(directory / "db.sqlite3") if databases is None else \
            PostgresStorage(await databases.dsn_for(directory), pool_size=4)
        await storage.open()
        await storage.migrate()
        return storage

    open_.backend = request.param  # type: ignore[attr-defined]
    yield open_
    if databases is not None:
        await databases.drop()


async def storage_sql(storage: Any, query: str, params: tuple[Any, ...] = ()) -> list[tuple]:
    """A statement run on either backend as the shared SQL runs (`?` placeholders), in a
    transaction of its own: what a test reads or arranges directly in the database."""
    async with storage._write() as db:
        return [tuple(r) for r in await db.execute_fetchall(query, params)]


class Tmpfs:
    """A small file system of its own, to be filled or made read-only (a tmpfs; needs root)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _mount(self, *options: str) -> None:
        subprocess.run(["mount", *options, str(self.path)], check=True, capture_output=True)

    def read_only(self) -> None:
        self._mount("-o", "remount,ro")

    def fill(self) -> Path:
        """Every free byte taken by one file (returned, to be removed)."""
        filler = self.path / "filler"
        with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
        return filler


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    where = tmp_path / "tmpfs"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
            capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield Tmpfs(where)
    subprocess.run(["umount", "-l", str(where)], check=True)
