"""The HTTP edge of a real `serve` process, over raw sockets: connections that idle, dribble
headers or bodies, or vanish mid-body are closed on time and quietly; every log line, aiohttp's
own included, is JSON through the one scrubber; an access log line per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import FAKE_TOKEN
from tests.processes import FAKE_CLI, free_port, read, start, write_fake_config

TIMEOUT = 1.0  # idle and body time-outs the gateway under test is given


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[tuple[int, Path]]:
    config, port, log = tmp_path / "c.toml", free_port(), tmp_path / "gateway.log"
    write_fake_config(config, tmp_path / "g.sqlite3", port, "fake")
    extra = "".join(f"{k} = {v}\n" for k, v in getattr(request, "param", {}).items())
    text = config.read_text().replace(
        "[storage]", f"idle_timeout_seconds = {TIMEOUT}\nbody_timeout_seconds = {TIMEOUT}\n"
        f"{extra}[storage]")
    config.write_text(text)
    process = await start(config, port, log, program=FAKE_CLI)
    try:
        yield port, log
    finally:
        process.terminate()
        await process.wait()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[float, bytes]:
    """How long until the server closed the connection, and what it sent before."""
    began, got = time.monotonic(), b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(4096):
            got += chunk
    return time.monotonic() - began, got


async def test_an_idle_connection_is_closed(served: tuple[int, Path]) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    waited, got = await closed_within(reader, 10)
    assert got == b"" and waited < TIMEOUT + 2
    writer.close()


async def test_headers_dribbled_byte_by_byte_are_cut_off(served: tuple[int, Path]) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    with pytest.raises(ConnectionError):  # noqa: PT012 - the writes are what gets refused
        for byte in b"POST /webhooks/fake HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
            assert time.monotonic() - began < TIMEOUT + 3, "still open"
            if reader.at_eof():
                raise ConnectionResetError
    writer.close()


async def test_a_slow_body_is_408_and_closed(served: tuple[int, Path]) -> None:
    port, log = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webhooks/fake HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"X-Fake-Token: " + FAKE_TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n"
                 b'{"kind":')
    await writer.drain()
    waited, got = await closed_within(reader, 10)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b'"request_timeout"' in got and waited < TIMEOUT + 3  # and 1 s lingering
    writer.close()


async def test_a_client_gone_mid_body_is_no_error_line(served: tuple[int, Path]) -> None:
    port, log = served
    for path in (b"/webhooks/fake", b"/api/v1/fulfillment-orders"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                     b"Authorization: Bearer " + b"x" * 8 + b"\r\n\r\n{\"kind\":")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
    await asyncio.sleep(0.5)
    lines = [orjson.loads(line) for line in read(log).splitlines()]
    assert not [line for line in lines if line.get("level") in ("error", "critical")], lines


@pytest.mark.parametrize("request_bytes", [
    b"GET /readyz?token=SECRET-IN-QUERY\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/v1/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-TOKEN\x01\r\n\r\n",
    b"POST /webhooks/fake?token=SECRET-IN-QUERY HTTP/1.1\x01\r\nHost: x\r\n\r\n",
    b"GET /x HTTP/1.1\r\nAuthorization: Basic SECRET-BASIC\r\nBad Header\x00: 1\r\n\r\n",
])
async def test_no_secret_reaches_any_log_line(served: tuple[int, Path],
                                              request_bytes: bytes) -> None:
    port, log = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes)
    await writer.drain()
    await closed_within(reader, 10)
    writer.close()
    await asyncio.sleep(0.3)
    text = read(log)
    assert "SECRET" not in text, text
    lines = [orjson.loads(line) for line in text.splitlines()]  # all JSON, aiohttp's too
    [refused] = [line for line in lines if line.get("logger") == "aiohttp.server"]
    assert refused["level"] == "info" and "exception" not in refused  # the client's fault
    assert not [line for line in lines if line["level"] in ("error", "critical")]


async def test_requests_are_access_log_lines(served: tuple[int, Path]) -> None:
    """API requests and refused webhooks each one line; accepted webhooks only with
    access_log_webhooks (each is in the inbox already)."""
    port, log = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v1/channels?token=SECRET-Q HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 401")
    writer.write(b"POST /webhooks/fake HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.3)
    lines = [line for line in map(orjson.loads, read(log).splitlines())
             if line.get("event") == "http.request" and line["path"] != "/readyz"]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("GET", "/api/v1/channels", 401), ("POST", "/webhooks/fake", 401)]
    assert "SECRET" not in read(log)


@pytest.mark.parametrize("served", [{"access_log_webhooks": "true"}], indirect=True)
async def test_every_request_is_one_access_log_line(served: tuple[int, Path]) -> None:
    port, log = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = orjson.dumps({"kind": "shipment", "record": {
        "id": "S1", "order_refs": [["order_number", "N1"]], "lines": [["A", 1]],
        "updated_at": "2026-12-01T10:00:00Z"}})
    writer.write(b"POST /webhooks/fake?token=SECRET-Q HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nX-Fake-Token: " + FAKE_TOKEN.encode()
                 + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
    await asyncio.sleep(0.3)
    access = [line for line in map(orjson.loads, read(log).splitlines())
              if line.get("event") == "http.request" and line.get("method") == "POST"]
    [line] = access
    assert line["path"] == "/webhooks/fake" and line["status"] == 200
    assert line["connector"] == "fake" and line["duration_ms"] >= 0
    assert "SECRET" not in read(log)
