"""The delivery client against a real loopback server that drops kept-alive connections the
way servers do: answering one request, then closing when the next one arrives."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time

import pytest
from aiohttp import web
from yarl import URL

from gateway.delivery import DeliveryClient

ANSWER = b"HTTP/1.1 204 No Content\r\n\r\n"


class OneRequestPerConnection(asyncio.Protocol):
    """Answers the first request of a connection; closes, unanswered, at the second."""

    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        OneRequestPerConnection.connections += 1
        self.transport = transport
        self.answered = False

    def data_received(self, data: bytes) -> None:
        if self.answered:
            self.transport.close()
            return
        self.answered = True
        self.transport.write(ANSWER)  # type: ignore[attr-defined]


@pytest.fixture
async def flaky_server():
    OneRequestPerConnection.connections = 0
    server = await asyncio.get_running_loop().create_server(
        OneRequestPerConnection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield URL(f"http://127.0.0.1:{port}/events")
    server.close()
    await server.wait_closed()


async def test_a_dropped_kept_alive_connection_is_replaced_once(flaky_server: URL) -> None:
    client = DeliveryClient(timeout_seconds=5, user_agent="test")
    try:
        for _ in range(3):
            answer = await client.post(flaky_server, {"webhook-id": "evt_1"}, b"{}")
            assert answer.status == 204
        # Each delivery after the first found its pooled connection dropped and used a new one.
        assert OneRequestPerConnection.connections == 3
    finally:
        client.close()


async def test_a_header_with_a_line_break_is_refused(flaky_server: URL) -> None:
    client = DeliveryClient(timeout_seconds=5, user_agent="test")
    with pytest.raises(ValueError, match="line break"):
        await client.post(flaky_server, {"webhook-id": "evt\r\nX-Evil: 1"}, b"{}")
    client.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    client = DeliveryClient(timeout_seconds=5, user_agent="test")
    with pytest.raises(OSError):
        await client.post(URL("http://127.0.0.1:9/events"), {}, b"{}")
    client.close()


class Scripted(asyncio.Protocol):
    """Reads one whole request, then writes `answer` in pieces; closes after if `close`."""

    def __init__(self, answer: bytes, close: bool) -> None:
        self.answer, self.close, self.buffer = answer, close, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), b"0"))
        if not sep or len(body) < length:
            return
        self.buffer = b""
        for i in range(0, len(self.answer), 7):  # in small pieces, as a slow network would
            self.transport.write(self.answer[i:i + 7])  # type: ignore[attr-defined]
        if self.close:
            self.transport.close()


FRAMINGS = {
    "content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"ok\": true}", False),
    "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\n{\"ok\"\r\n7\r\n: true}\r\n0\r\n\r\n", False),
    "close-delimited, HTTP/1.0": (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
                                  b"{\"ok\": true}", True),
    "close-delimited, HTTP/1.1": (b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nthanks",
                                  True),
    "1xx first": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "connection: close with a length": (b"HTTP/1.1 201 Created\r\nConnection: close\r\n"
                                        b"Content-Length: 4\r\n\r\ndone", True),
    "204, then closed": (b"HTTP/1.1 204 No Content\r\n\r\n", True),
}


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_every_http_1_framing_of_the_answer_is_read(framing: str) -> None:
    answer, close = FRAMINGS[framing]
    server = await asyncio.get_running_loop().create_server(
        lambda: Scripted(answer, close), "127.0.0.1", 0)
    url = URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/events")
    client = DeliveryClient(timeout_seconds=5, user_agent="test")
    try:
        for _ in range(3):  # and again: on the kept connection, or on a new one after a close
            got = await client.post(url, {"webhook-id": "evt_1"}, b"{}")
            assert 200 <= got.status < 300
        expected_body = answer.rsplit(b"\r\n\r\n", 1)[1]
        if framing == "chunked":
            expected_body = b'{"ok": true}'
        assert got.body == expected_body
    finally:
        client.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"ok\"",  # shorter than it said
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ok\"",  # no last chunk
    b"HTTP/1.1 200 OK\r\nContent-",  # headers cut
])
async def test_an_answer_cut_short_is_a_connection_error(answer: bytes) -> None:
    server = await asyncio.get_running_loop().create_server(
        lambda: Scripted(answer, True), "127.0.0.1", 0)
    url = URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/events")
    client = DeliveryClient(timeout_seconds=5, user_agent="test")
    try:
        with pytest.raises(ConnectionError, match="closed before the answer"):
            await client.post(url, {}, b"{}")
    finally:
        client.close()
        server.close()
        await server.wait_closed()


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Python's http.server as a subscriber writes it: HTTP/1.0, a body, then the close."""

    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - the library's name
        _Receiver.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"received": true}')

    def log_message(self, *args: object) -> None:
        pass


async def test_pythons_http_server_and_aiohttp_are_answered_every_time(aiohttp_server) -> None:
    _Receiver.received = []
    threaded = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=threaded.serve_forever, daemon=True)
    thread.start()

    async def receive(request: web.Request) -> web.Response:
        return web.json_response({"received": len(await request.read())})

    app = web.Application()
    app.router.add_post("/events", receive)
    served = await aiohttp_server(app)
    client = DeliveryClient(timeout_seconds=5, user_agent="test")
    try:
        for url in (f"http://127.0.0.1:{threaded.server_address[1]}/events",
                    f"http://127.0.0.1:{served.port}/events"):
            for n in range(3):
                got = await client.post(URL(url), {"webhook-id": f"evt_{n}"}, b'{"n": 1}')
                assert got.status == 200 and b"received" in got.body, got
        assert _Receiver.received == [b'{"n": 1}'] * 3
    finally:
        client.close()
        threaded.shutdown()
        threaded.server_close()


class AnswersAfter(asyncio.Protocol):
    """Answers each request after `delay` seconds (never, when None)."""

    delay: float | None = None
    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        AnswersAfter.connections += 1
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if AnswersAfter.delay is not None:
            asyncio.get_running_loop().call_later(
                AnswersAfter.delay, lambda: self.transport.is_closing()
                or self.transport.write(ANSWER))  # type: ignore[attr-defined]


async def test_an_answer_that_does_not_come_times_out_and_its_connection_is_dropped() -> None:
    """The time-out holds without a timer per request: one sweeper fails what is overdue,
    within a tenth of the time-out. A connection that timed out is never reused (its late
    answer would be taken for the next request's)."""
    AnswersAfter.connections, AnswersAfter.delay = 0, None
    server = await asyncio.get_running_loop().create_server(AnswersAfter, "127.0.0.1", 0)
    url = URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/events")
    client = DeliveryClient(timeout_seconds=0.5, user_agent="test")
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="no answer within 0.5 s"):
            await client.post(url, {"webhook-id": "evt_1"}, b"{}")
        took = time.monotonic() - started
        assert 0.5 <= took < 0.5 * 1.1 + 0.2, took
        # Answers within the time-out are taken as before; the timed-out connection is not.
        AnswersAfter.delay = 0.2
        for _ in range(3):
            assert (await client.post(url, {"webhook-id": "evt_2"}, b"{}")).status == 204
        assert AnswersAfter.connections == 2
    finally:
        client.close()
        server.close()
        await server.wait_closed()
