"""The delivery client against a real loopback server that drops kept-alive connections the
way servers do: answering one request, then closing when the next one arrives."""

from __future__ import annotations

import asyncio

import pytest
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
