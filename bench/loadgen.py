"""A lean HTTP/1.1 load generator (asyncio Protocols over keep-alive connections) and a raw
responder to measure the generator's own ceiling. Loopback only; every run is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def split_message(buffer: bytes) -> tuple[bytes, int] | None:
    """(head, total length) of the first complete HTTP message in the buffer, if there is one."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    at = buffer.find(b"\r\nContent-Length:", 0, end)  # the spelling aiohttp and we send
    if at >= 0:
        stop = buffer.find(b"\r\n", at + 17)
        length = int(buffer[at + 17: stop if 0 <= stop <= end else end])
    else:
        length = 0
        for line in buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    return buffer[:end], end + 4 + length


@dataclass
class Run:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class _Connection(asyncio.Protocol):
    """Sends one request, parses one response, sends the next: no pipelining."""

    def __init__(self, next_request: Callable[[], bytes | None], run: Run,
                 done: asyncio.Future[None]) -> None:
        self.next_request = next_request
        self.run = run
        self.done = done
        self.buffer = b""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        request = self.next_request()
        if request is None:
            assert self.transport is not None
            self.transport.close()
            return
        self.run.sent += 1
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while message := split_message(self.buffer):
            head, size = message
            status = int(head[9:12])
            self.buffer = self.buffer[size:]
            self.run.latencies.append(time.perf_counter() - self.started)
            if 200 <= status < 300:
                self.run.ok += 1
            else:
                self.run.failed += 1
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def drive(host: str, port: int, make_request: Callable[[int], bytes], count: int,
                connections: int, max_seconds: float) -> Run:
    """Send up to `count` requests over `connections` keep-alive connections, or stop at
    `max_seconds`, whichever comes first."""
    run = Run()
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + max_seconds
    counter = iter(range(count))

    def next_request() -> bytes | None:
        if time.perf_counter() > deadline:
            return None
        i = next(counter, None)
        return None if i is None else make_request(i)

    started = time.perf_counter()
    waits = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda d=done: _Connection(next_request, run, d), host, port)
        waits.append(done)
    await asyncio.wait_for(asyncio.gather(*waits), timeout=max_seconds + 30)
    run.elapsed = time.perf_counter() - started
    return run


def post(path: str, body: bytes, host: str = "127.0.0.1") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _RawResponder(asyncio.Protocol):
    """Answers every request with a fixed 200: a server as cheap as Python allows."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                b"\r\n{}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while message := split_message(self.buffer):
            self.buffer = self.buffer[message[1]:]
            self.transport.write(self.RESPONSE)  # type: ignore[attr-defined]


async def serve_raw(host: str, port: int, seconds: float) -> None:
    server = await asyncio.get_running_loop().create_server(_RawResponder, host, port)
    async with server:
        await asyncio.sleep(seconds)
