"""The command line: demo, migrate, poll and dead-letters, run as a user would run them."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from gateway.logs import scrub
from storage.sqlite import migrations
from tests.conftest import ENV, GatewayUnderTest, Sandbox, write_config
from tests.test_crash import free_port

ROOT = Path(__file__).resolve().parent.parent


async def run_cli(*args: str, env: dict[str, str] | None = None, seconds: float = 20
                  ) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, cwd=ROOT,
        env={**os.environ, **(env if env is not None else ENV)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=seconds)
    return process.returncode or 0, out.decode()


async def test_demo_shows_the_split_reconcile(tmp_path: Path) -> None:
    config = tmp_path / "demo.toml"
    gateway_port, sandbox_port = free_port(), free_port()
    config.write_text((ROOT / "config.toml").read_text()
                      .replace("port = 8080", f"port = {gateway_port}")
                      .replace("8081", str(sandbox_port))
                      .replace('path = "data/gateway.sqlite3"',
                               f'path = "{tmp_path / "gateway.sqlite3"}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPSTATION_", "GATEWAY_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "--config", str(config), "demo", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("Serving until Ctrl-C" in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, "".join(lines)
            lines.append(line.decode())
    finally:
        process.terminate()
        await process.wait()
    text = "".join(lines)
    statuses = [s for s in ("unfulfilled ", "partially_fulfilled", "fulfilled ")
                if s in text]
    assert statuses == ["unfulfilled ", "partially_fulfilled", "fulfilled "], text
    assert " 6/10 shipped" in text and "10/10 shipped" in text
    assert "1001-1 (6 units) and 1001-2 (4 units)" in text
    # The channel pushed it after its (demo) delay, with the custom fields under
    # ShipStation's names, and the demo subscriber verified each signed event.
    assert "internalNotes='Deliver to dock 4', advancedOptions.customField1='LTL'" in text
    for event in ("fulfillment_order.created", "order.pushed", "invoice.requested",
                  "fulfillment_order.status_changed"):
        assert f"[subscriber] {event}" in text, text
    assert "REJECTED" not in text
    assert text.count("unfulfilled -> partially_fulfilled  (signature ok)") == 1
    assert f"curl -H 'Authorization: Bearer demo-token' http://127.0.0.1:{gateway_port}" in text
    assert (tmp_path / "demo.sqlite3").exists()


async def test_migrate_poll_and_dead_letters(tmp_path: Path, sandbox: Sandbox,
                                             start_gateway) -> None:
    db, config = tmp_path / "cli.sqlite3", tmp_path / "cli.toml"
    write_config(config, db, sandbox.url)
    code, out = await run_cli("--config", str(config), "migrate")
    latest = len(migrations())
    assert code == 0 and f"schema version {latest} ({latest} migration(s) applied)" in out
    code, out = await run_cli("--config", str(config), "migrate")
    assert code == 0 and "(0 migration(s) applied)" in out

    order = await sandbox.order("CLI1", [("A", 1)])
    await sandbox.ship(order["orderId"], notify=False)
    code, out = await run_cli("--config", str(config), "poll", "shipstation")
    assert code == 0 and "shipstation shipments: 1 record(s), 1 new inbox event(s)" in out
    code, out = await run_cli("--config", str(config), "poll", "nope")
    assert code == 1 and "no enabled connector 'nope'" in out

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE inbox_events SET status = 'dead', attempts = 8,"
                     " last_error = 'PartnerUnavailable: HTTP 500'")
        [(event_id,)] = conn.execute("SELECT id FROM inbox_events").fetchall()
    code, out = await run_cli("--config", str(config), "dead-letters", "list")
    assert code == 0 and f"inbox-{event_id}\tpoll\tshipstation\t8 attempt(s)" in out
    code, out = await run_cli("--config", str(config), "dead-letters", "replay",
                              f"inbox-{event_id}")
    assert code == 0 and "queued again" in out
    code, out = await run_cli("--config", str(config), "dead-letters", "replay",
                              f"inbox-{event_id}")
    assert code == 1 and f"no such dead letter: inbox-{event_id}" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, attempts FROM inbox_events").fetchall() == [
            ("pending", 0)]


async def test_missing_secret_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_config(config, tmp_path / "x.sqlite3", "http://127.0.0.1:9")
    env = {k: v for k, v in ENV.items() if k != "SS_HOOK"}
    env_all = {k: v for k, v in os.environ.items() if k not in ENV} | env
    code, out = await run_cli("--config", str(config), "serve", env=env_all, seconds=30)
    assert code == 2
    assert "config error: connectors[0].webhook_token_env: environment variable SS_HOOK" in out


@pytest.mark.parametrize(("line", "message"), [
    ("page_sise = 100", "connectors[0]: unknown key(s) page_sise for connector type"),
    ("page_size = \"many\"", "connectors[0].page_size: expected an integer, got 'many'"),
    ("allowed_resource_origin = \"(\"", "connectors[0].allowed_resource_origin: not a regular"),
])
async def test_a_bad_connector_option_stops_serve_with_one_line(tmp_path: Path, line: str,
                                                                 message: str) -> None:
    """It used to be ignored (a typo) or to print an error and hang without listening."""
    config = tmp_path / "c.toml"
    write_config(config, tmp_path / "x.sqlite3", "http://127.0.0.1:9")
    key = line.split(" = ")[0]
    kept = [ln for ln in config.read_text().splitlines() if not ln.startswith(key + " ")]
    config.write_text("\n".join([*kept, line, ""]))
    code, out = await run_cli("--config", str(config), "serve", seconds=15)
    assert code == 2
    assert out.strip().splitlines() == [next(ln for ln in out.splitlines() if message in ln)]
    assert not (tmp_path / "x.sqlite3").exists()  # stopped before anything started


async def test_sandbox_runs_standalone(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connectors.shipstation.sandbox", "--port", str(port), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        import aiohttp

        from connectors.shipstation.client import basic_auth

        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/shipments",
                                           headers={"Authorization": basic_auth(
                                               "sandbox-key", "sandbox-secret")}) as resp:
                        assert resp.status == 200
                        assert resp.headers["X-Rate-Limit-Limit"] == "40"
                        body = await resp.json()
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
        assert body == {"shipments": [], "total": 0, "page": 1, "pages": 1}
    finally:
        process.terminate()
        await process.wait()


def test_logs_scrub_secrets() -> None:
    event = {"event": "x", "authorization": "Basic abc", "headers": {"X-Token": "t0k"},
             "url": "https://gw.example.com/webhooks/shipstation?token=s3cret&x=1",
             "error": "401 for Bearer abc.def"}
    clean = scrub(event)
    assert clean["authorization"] == "[redacted]" and clean["headers"]["X-Token"] == "[redacted]"
    assert "s3cret" not in clean["url"] and clean["url"].endswith("token=[redacted]&x=1")
    assert clean["error"] == "401 for Bearer [redacted]"


async def test_paging_follows_every_page(start_gateway, sandbox: Sandbox) -> None:
    gw: GatewayUnderTest = await start_gateway(page_size=2)
    fo = await gw.create_fo([("A", 5)], order_number="PG1")
    order = await sandbox.order("PG1", [("A", 5)], order_key=fo["id"])
    for _ in range(5):
        await sandbox.ship(order["orderId"], [("A", 1)], notify=False)
    result = await gw.poll()
    assert result["feeds"]["shipments"]["shipments_created"] == 5
    pages = [r["query"].get("page") for r in sandbox.state.requests
             if r["path"] == "/shipments" and "createDateStart" in r["query"]]
    assert pages == ["1", "2", "3"]
    await gw.wait_status(fo["id"], "fulfilled")


async def test_taken_port_is_a_clear_config_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.toml"
        write_config(config, tmp_path / "x.sqlite3", "http://127.0.0.1:9", port)
        code, out = await run_cli("--config", str(config), "serve", seconds=30)
    assert code == 2
    assert f"config error: cannot listen on 127.0.0.1:{port}" in out
    assert "choose another port in server.port" in out


async def test_replaying_many_dead_letters(tmp_path: Path, sandbox: Sandbox) -> None:
    db, config = tmp_path / "cli.sqlite3", tmp_path / "cli.toml"
    write_config(config, db, sandbox.url)
    code, _ = await run_cli("--config", str(config), "migrate")
    assert code == 0
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO outbox_messages (key, destination, kind, fo_id, payload, status,"
            " not_before, attempts, last_error, created_at, updated_at)"
            " VALUES (?, 'connector:shipstation', 'push_order', ?, '{}', 'dead', 'x', 1,"
            " 'rejected: HTTP 400', 'x', 'x')", [(f"k{i}", f"fo{i}") for i in range(12)])
    code, out = await run_cli("--config", str(config), "dead-letters", "list")
    assert code == 0 and out.count("\tpush_order\tshipstation\t1 attempt(s)\trejected: HTTP 400") == 12
    code, out = await run_cli("--config", str(config), "dead-letters", "replay", "--all")
    assert code == 0 and "12 dead letter(s) queued again" in out, out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT status, attempts FROM outbox_messages"
                            ).fetchall() == [("pending", 0)]
    code, out = await run_cli("--config", str(config), "dead-letters", "replay")
    assert code == 1 and "name the dead letters to replay, or pass --all" in out
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox_messages SET status = 'dead' WHERE key IN ('k0', 'k1')")
    code, out = await run_cli("--config", str(config), "dead-letters", "discard", "outbox-1",
                              "outbox-2", "outbox-3")
    assert code == 1 and "2 dead letter(s) discarded" in out and "outbox-3" in out, out
    code, out = await run_cli("--config", str(config), "dead-letters", "list")
    assert code == 0 and out.strip() == ""


async def test_a_second_serve_on_one_sqlite_file_refuses_to_start(tmp_path: Path,
                                                                   sandbox: Sandbox) -> None:
    """Webhook de-duplication and claims live in the serving process: one per SQLite file.
    A one-off `poll` beside it is fine (it runs no worker), and the file serves again once the
    first process is gone."""
    from tests.test_crash import start

    db = tmp_path / "one.sqlite3"
    first_config, second_config = tmp_path / "a.toml", tmp_path / "b.toml"
    first_port = free_port()
    write_config(first_config, db, sandbox.url, first_port)
    write_config(second_config, db, sandbox.url, free_port())
    first = await start(first_config, first_port, tmp_path / "a.log")
    try:
        code, out = await run_cli("--config", str(second_config), "serve", seconds=30)
        assert code == 1
        assert f"{db} is served by" in out and "one gateway process serves a SQLite file" in out
        code, out = await run_cli("--config", str(second_config), "poll", "shipstation")
        assert code == 0, out
    finally:
        first.terminate()
        await first.wait()
    again_port = free_port()
    write_config(second_config, db, sandbox.url, again_port)
    second = await start(second_config, again_port, tmp_path / "b.log")
    second.terminate()
    await second.wait()
