"""A lean HTTP/1.1 POST client for event deliveries, on keep-alive connections.

Event deliveries are the one high-volume outbound path (every change, to every subscriber),
and aiohttp's client costs several times what a delivery needs (measured in bench/outbox.py).
This sends a prepared request over a pooled asyncio connection and parses the answer with
`httptools` (llhttp, the parser Node.js uses), so no HTTP parsing is written here. It does
only what deliveries need: POST, no redirects, no proxies, a body read and kept to 1 KiB;
every HTTP/1.x framing of the answer (Content-Length, chunked, a body ended by closing the
connection, interim 1xx answers before it, `Connection: close`).
Partner APIs keep using aiohttp through their connectors.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import httptools
from yarl import URL

KEPT_BODY_BYTES = 1024
MAX_IDLE_PER_ORIGIN = 64
# How often answers overdue are looked for, as a share of the time-out (and at most a second
# apart): a request times out after between 1 and 1.1 times the time-out.
SWEEPS_PER_TIMEOUT = 10


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received_any = False
        self._waiter: asyncio.Future[Answer] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._retry_after = b""
        self._body = bytearray()
        # Whether the answer in progress has its headers, and whether its length is framed
        # (Content-Length or chunked) or runs until the server closes (HTTP/1.0 style).
        self._headers_done = False
        self._framed = False
        self.keep_alive = True

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self._parser is None:
            self._fail(ConnectionError("answer without a request"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"unparsable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self._parser is not None and self._headers_done \
                and not self._framed:
            self.keep_alive = False  # a body delimited by the close: it is complete now
            self.on_message_complete()
            return
        self._fail(ConnectionError(f"connection closed before the answer ({exc or 'EOF'})"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._retry_after, self._body = b"", bytearray()
        self._headers_done = self._framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self._retry_after = value
        elif name in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status in (204, 304) or 100 <= status < 200:
            self._framed = True  # never a body

    def on_body(self, body: bytes) -> None:
        if len(self._body) < KEPT_BODY_BYTES:
            self._body += body[:KEPT_BODY_BYTES - len(self._body)]

    def on_message_complete(self) -> None:
        parser, waiter = self._parser, self._waiter
        assert parser is not None
        if 100 <= parser.get_status_code() < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the final one follows
        if not self.closed:
            self.keep_alive = parser.should_keep_alive()
        self._parser = None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(parser.get_status_code(),
                                     self._retry_after.decode("latin-1"), bytes(self._body)))

    # use

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def exchange(self, request: bytes) -> Answer:
        assert self.transport is not None
        self.received_any = False
        if self.closed or self.transport.is_closing():
            raise ConnectionError("connection already closed")
        self._retry_after, self._body = b"", bytearray()
        self._parser = httptools.HttpResponseParser(self)
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter

    def time_out(self, seconds: float) -> None:
        self._fail(TimeoutError(f"no answer within {seconds:g} s"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class DeliveryClient:
    """POSTs to a few fixed URLs (the subscribers), reusing connections per origin."""

    def __init__(self, timeout_seconds: float, user_agent: str) -> None:
        self.timeout_seconds = timeout_seconds
        self.user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        # Exchanges in progress and when each is due. One sweeper times them out: a timer per
        # request (asyncio.timeout) cost ~6 % of a delivery's CPU in bench/outbox.py.
        self._deadlines: dict[_Connection, float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, url: URL) -> _Connection:
        loop = asyncio.get_running_loop()
        secure = url.scheme == "https"
        _, connection = await loop.create_connection(
            _Connection, url.host, url.port, ssl=self._tls() if secure else None,
            server_hostname=url.host if secure else None)
        return connection

    def _request(self, url: URL, headers: dict[str, str], body: bytes) -> bytes:
        host = url.host if url.is_default_port() else f"{url.host}:{url.port}"
        lines = [f"POST {url.raw_path_qs} HTTP/1.1", f"Host: {host}",
                 f"User-Agent: {self.user_agent}", f"Content-Length: {len(body)}"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} contains a line break")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def post(self, url: URL, headers: dict[str, str], body: bytes) -> Answer:
        """One POST within the timeout. A reused connection the server had already closed is
        replaced once, before any answer arrived (the receiver de-duplicates by webhook-id)."""
        origin = (url.scheme, url.host or "", url.port or 0)
        request = self._request(url, headers, body)
        loop = asyncio.get_running_loop()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="delivery-timeouts")
        deadline = loop.time() + self.timeout_seconds
        for attempt in range(2):
            idle = self._idle.get(origin) if attempt == 0 else None
            while idle and idle[-1].closed:
                idle.pop()
            connection = idle.pop() if idle else None
            reused = connection is not None
            if connection is None:
                async with asyncio.timeout_at(deadline):  # rare: connections are kept
                    connection = await self._connect(url)
            self._deadlines[connection] = deadline
            try:
                answer = await connection.exchange(request)
            except ConnectionError:
                connection.close()
                if reused and not connection.received_any:
                    continue
                raise
            except BaseException:
                connection.close()  # a time-out or cancellation mid-answer: unusable
                raise
            finally:
                self._deadlines.pop(connection, None)
            pool = self._idle.setdefault(origin, [])
            if connection.keep_alive and not connection.closed \
                    and len(pool) < MAX_IDLE_PER_ORIGIN:
                pool.append(connection)
            else:
                connection.close()
            return answer
        raise ConnectionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        every = min(1.0, self.timeout_seconds / SWEEPS_PER_TIMEOUT)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for connection in [c for c, due in self._deadlines.items() if due <= now]:
                self._deadlines.pop(connection, None)
                connection.time_out(self.timeout_seconds)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pool in self._idle.values():
            for connection in pool:
                connection.close()
        self._idle.clear()
