"""The command line run as a user runs it (migrate, poll, dead-letters, serve's refusals), each
command its own process, on the scripted fake connector type."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.logs import scrub
from storage.sqlite import migrations
from tests.conftest import ENV
from tests.processes import FAKE_CLI, free_port, run_cli, start, write_fake_config


async def cli(*args: str, **options: Any) -> tuple[int, str]:
    return await run_cli(*args, program=FAKE_CLI, **options)


async def test_migrate_poll_and_dead_letters(tmp_path: Path) -> None:
    db, config, script = tmp_path / "cli.sqlite3", tmp_path / "cli.toml", tmp_path / "wms.json"
    write_fake_config(config, db, 0, "wms")
    script.write_bytes(orjson.dumps({"wms": {"shipments": [{"kind": "shipment", "record": {
        "id": "S1", "order_refs": [["fulfillment_order_id", "fo-1"]], "lines": [["A", 1]],
        "updated_at": "2026-12-01T10:00:00Z"}}]}}))
    env = {**ENV, "FAKE_SCRIPT": str(script)}
    code, out = await cli("--config", str(config), "migrate")
    latest = len(migrations())
    assert code == 0 and f"schema version {latest} ({latest} migration(s) applied)" in out
    code, out = await cli("--config", str(config), "migrate")
    assert code == 0 and "(0 migration(s) applied)" in out

    code, out = await cli("--config", str(config), "poll", "wms", env=env)
    assert code == 0 and "wms shipments: 1 record(s), 1 new inbox event(s)" in out, out
    assert "wms orders: 0 record(s), 0 new inbox event(s)" in out
    code, out = await cli("--config", str(config), "poll", "wms", "--feed", "shipments", env=env)
    assert code == 0 and "wms shipments: 0 record(s)" in out and "orders" not in out  # cursor
    code, out = await cli("--config", str(config), "poll", "wms", "--feed", "nope")
    assert code == 1 and "no feed 'nope'" in out and "shipments" in out, out
    code, out = await cli("--config", str(config), "poll", "nope")
    assert code == 1 and "no enabled connector 'nope'" in out

    with sqlite3.connect(db) as conn:
        [(event_id, status)] = conn.execute("SELECT id, status FROM inbox_events").fetchall()
        assert status == "pending"  # a one-off poll runs no worker: `serve` takes it
        conn.execute("UPDATE inbox_events SET status = 'dead', attempts = 8,"
                     " last_error = 'PartnerUnavailable: HTTP 500'")
    code, out = await cli("--config", str(config), "dead-letters", "list")
    assert code == 0 and f"inbox-{event_id}\tpoll\twms\t8 attempt(s)" in out
    code, out = await cli("--config", str(config), "dead-letters", "replay", f"inbox-{event_id}")
    assert code == 0 and "queued again" in out
    code, out = await cli("--config", str(config), "dead-letters", "replay", f"inbox-{event_id}")
    assert code == 1 and f"no such dead letter: inbox-{event_id}" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, attempts FROM inbox_events").fetchall() == [
            ("pending", 0)]


async def test_missing_secret_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_fake_config(config, tmp_path / "x.sqlite3", 0, "wms")
    env = {k: v for k, v in os.environ.items() if k not in ENV} | {
        k: v for k, v in ENV.items() if k not in ("FAKE_TOKEN", "GATEWAY_API_TOKENS")}
    code, out = await cli("--config", str(config), "serve", env=env, seconds=30)
    assert code == 2
    # every missing variable in one line, each with the key that named it
    assert out.strip() == (
        "config error: environment variables not set: GATEWAY_API_TOKENS (named by"
        " api.tokens_env), FAKE_TOKEN (named by connectors[0].token_env); export them before"
        " starting")
    assert not (tmp_path / "x.sqlite3").exists()


@pytest.mark.parametrize(("line", "message"), [
    ("page_sise = 100", "connectors[0]: unknown key(s) page_sise for connector type 'fake'"),
    ("page_size = \"many\"", "connectors[0].page_size: expected an integer, got 'many'"),
    ("page_size = 501", "connectors[0].page_size: must be at most 500, got 501"),
    ("id_pattern = \"(\"", "connectors[0].id_pattern: not a regular expression"),
    ("orders_interval_minutes = 0", "connectors[0].orders_interval_minutes: must be at least"),
])
async def test_a_bad_connector_option_stops_serve_with_one_line(tmp_path: Path, line: str,
                                                                 message: str) -> None:
    """It used to be ignored (a typo) or to print an error and hang without listening."""
    config = tmp_path / "c.toml"
    write_fake_config(config, tmp_path / "x.sqlite3", 0, "wms")
    config.write_text(config.read_text() + line + "\n")
    code, out = await cli("--config", str(config), "serve", seconds=15)
    assert code == 2
    assert out.strip().splitlines() == [next(ln for ln in out.splitlines() if message in ln)]
    assert not (tmp_path / "x.sqlite3").exists()  # stopped before anything started


def test_logs_scrub_secrets() -> None:
    event = {"event": "x", "authorization": "Basic abc", "headers": {"X-Token": "t0k"},
             "url": "https://gw.example.com/webhooks/wms?token=s3cret&x=1",
             "error": "401 for Bearer abc.def"}
    clean = scrub(event)
    assert clean["authorization"] == "[redacted]" and clean["headers"]["X-Token"] == "[redacted]"
    assert "s3cret" not in clean["url"] and clean["url"].endswith("token=[redacted]&x=1")
    assert clean["error"] == "401 for Bearer [redacted]"


async def test_taken_port_is_a_clear_config_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.toml"
        write_fake_config(config, tmp_path / "x.sqlite3", port, "wms")
        code, out = await cli("--config", str(config), "serve", seconds=30)
    assert code == 2
    assert out.strip() == (f"config error: server.port: 127.0.0.1:{port} is in use by another"
                           " process; stop it or choose another port")
    assert not (tmp_path / "x.sqlite3").exists()  # refused before the database was touched


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])
async def test_a_host_that_is_not_this_machine_names_server_host(tmp_path: Path,
                                                                 host: str) -> None:
    config = tmp_path / "c.toml"
    write_fake_config(config, tmp_path / "x.sqlite3", free_port(), "wms")
    config.write_text(config.read_text().replace('host = "127.0.0.1"', f'host = "{host}"'))
    code, out = await cli("--config", str(config), "serve", seconds=30)
    assert code == 2
    [line] = out.strip().splitlines()
    assert line.startswith(f"config error: server.host: cannot listen on {host}")
    assert "port" not in line.split(";")[1]  # the host is what to fix, not the port


async def test_replaying_many_dead_letters(tmp_path: Path) -> None:
    db, config = tmp_path / "cli.sqlite3", tmp_path / "cli.toml"
    write_fake_config(config, db, 0, "wms")
    code, _ = await cli("--config", str(config), "migrate")
    assert code == 0
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO outbox_messages (key, destination, kind, fo_id, payload, status,"
            " not_before, attempts, last_error, created_at, updated_at)"
            " VALUES (?, 'connector:wms', 'push_order', ?, '{}', 'dead', 'x', 1,"
            " 'rejected: HTTP 400', 'x', 'x')", [(f"k{i}", f"fo{i}") for i in range(12)])
    code, out = await cli("--config", str(config), "dead-letters", "list")
    assert code == 0 and out.count("\tpush_order\twms\t1 attempt(s)\trejected: HTTP 400") == 12
    code, out = await cli("--config", str(config), "dead-letters", "replay", "--all")
    assert code == 0 and "12 dead letter(s) queued again" in out, out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT status, attempts FROM outbox_messages"
                            ).fetchall() == [("pending", 0)]
    code, out = await cli("--config", str(config), "dead-letters", "replay")
    assert code == 1 and "name the dead letters to replay, or pass --all" in out
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox_messages SET status = 'dead' WHERE key IN ('k0', 'k1')")
    code, out = await cli("--config", str(config), "dead-letters", "discard", "outbox-1",
                          "outbox-2", "outbox-3")
    assert code == 1 and "2 dead letter(s) discarded" in out and "outbox-3" in out, out
    code, out = await cli("--config", str(config), "dead-letters", "list")
    assert code == 0 and out.strip() == "no dead letters"
    for action in ("replay", "discard"):
        code, out = await cli("dead-letters", action, "--all", "--config", str(config))
        assert code == 0 and out.strip() == f"nothing to {action}: there are no dead letters"


async def test_a_second_serve_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    """Webhook de-duplication and claims live in the serving process: one per SQLite file.
    A one-off `poll` beside it is fine (it runs no worker), and the file serves again once the
    first process is gone."""
    db = tmp_path / "one.sqlite3"
    first_config, second_config = tmp_path / "a.toml", tmp_path / "b.toml"
    first_port = free_port()
    write_fake_config(first_config, db, first_port, "wms")
    write_fake_config(second_config, db, free_port(), "wms")
    first = await start(first_config, first_port, tmp_path / "a.log", program=FAKE_CLI)
    try:
        code, out = await cli("--config", str(second_config), "serve", seconds=30)
        assert code == 1
        assert f"{db} is served by" in out and "one gateway process serves a SQLite file" in out
        code, out = await cli("--config", str(second_config), "poll", "wms")
        assert code == 0, out
    finally:
        first.terminate()
        await first.wait()
    again_port = free_port()
    write_fake_config(second_config, db, again_port, "wms")
    second = await start(second_config, again_port, tmp_path / "b.log", program=FAKE_CLI)
    second.terminate()
    await second.wait()


@pytest.mark.parametrize("case", ["not a database", "directory", "under a file",
                                  "read-only file system"])
async def test_a_database_path_that_cannot_be_used_stops_serve_with_one_line(
        tmp_path: Path, case: str, request: pytest.FixtureRequest) -> None:
    """Exits at once, non-zero, one line naming storage.path and what to do: no traceback,
    and nothing left running (a half-opened connection's thread used to keep it alive)."""
    db = tmp_path / "g.sqlite3"
    if case == "not a database":
        db.write_bytes(b"these bytes are no SQLite file" * 10)
        expected = f"storage.path: {db} is not a SQLite database"
    elif case == "directory":
        db.mkdir()
        expected = f"storage.path: {db} is a directory; name a database file in it"
    elif case == "under a file":
        (tmp_path / "file").write_text("x")
        db = tmp_path / "file" / "g.sqlite3"
        expected = f"storage.path: {tmp_path / 'file'} is a file, so {db} cannot be made"
    else:
        mount = request.getfixturevalue("tmpfs")
        mount.read_only()
        db = mount.path / "g.sqlite3"
        expected = f"storage.path: {db} is on a read-only file system"
    config = tmp_path / "c.toml"
    write_fake_config(config, db, free_port(), "wms")
    began = time.monotonic()
    code, out = await cli("serve", "--config", str(config), seconds=15)
    assert time.monotonic() - began < 10
    assert code == 1
    [line] = out.strip().splitlines()
    assert line.startswith(f"error: {expected}"), line


async def test_command_line_options_anywhere_version_and_help(tmp_path: Path) -> None:
    db, config = tmp_path / "g.sqlite3", tmp_path / "c.toml"
    write_fake_config(config, db, 0, "wms")
    code, out = await cli("migrate", "--config", str(config), "--log-level", "debug")
    assert code == 0 and "schema version" in out, out
    code, out = await cli("--log-level", "Warning", "dead-letters", "list", "--config",
                          str(config))
    assert code == 0 and out.strip() == "no dead letters"
    code, out = await cli("--log-level", "loud", "migrate")
    assert code == 2 and "invalid choice: 'LOUD'" in out and "debug,info,warning,error" in out
    code, out = await cli("--version")
    assert code == 0 and re.fullmatch(r"fulfillment-gateway \d+\.\d+\.\d+\S*", out.strip())
    code, out = await cli("--help")
    for command in ("serve", "demo", "migrate", "poll", "dead-letters", "sandbox"):
        assert command in out
    for args, words in ((("serve",), ["--config", "--log-level", "SIGTERM"]),
                        (("poll",), ["connector", "--feed", "every enabled feed"]),
                        (("dead-letters", "replay"), ["ids", "--all", "inbox-12"])):
        code, out = await cli(*args, "--help")
        assert code == 0 and all(word in out for word in words), (args, out)


async def test_healthcheck_says_whether_the_configured_port_is_ready(tmp_path: Path) -> None:
    config, port = tmp_path / "c.toml", free_port()
    write_fake_config(config, tmp_path / "g.sqlite3", port, "wms")
    code, out = await cli("healthcheck", "--config", str(config))
    assert code == 1 and out.startswith(f"not ready: http://127.0.0.1:{port}/readyz")
    gateway = await start(config, port, tmp_path / "g.log", program=FAKE_CLI)
    try:
        code, out = await cli("healthcheck", "--config", str(config))
        assert code == 0 and out.strip() == f"ready: http://127.0.0.1:{port}/readyz"
    finally:
        gateway.terminate()
        await gateway.wait()


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """Rolling back the code without the database: it stops and says what to do, rather
    than run on tables it does not know."""
    db, config = tmp_path / "g.sqlite3", tmp_path / "c.toml"
    write_fake_config(config, db, free_port(), "wms")
    code, _ = await cli("migrate", "--config", str(config))
    assert code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, '0999_from_the_future.sql', 'x')")
    code, out = await cli("serve", "--config", str(config))
    assert code == 1
    assert out.strip() == (
        "error: storage.path: the database is at schema version 999, newer than this"
        f" version of the gateway knows ({len(migrations())}); run the newer version, or"
        " restore the backup taken before the upgrade")


def test_serving_takes_start_up_objects_out_of_the_collectors_reach() -> None:
    """`serve` freezes what start-up made and raises the young generation's threshold: with
    the defaults, full collections walked ~75,000 start-up objects every few seconds under
    load (a 60-80 ms pause each, bench/pipeline.py)."""
    import gc

    from gateway.app import YOUNG_COLLECTION_THRESHOLD, settle_garbage_collector

    before = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
        assert YOUNG_COLLECTION_THRESHOLD > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
