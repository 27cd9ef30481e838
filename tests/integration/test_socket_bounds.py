"""Bounds at the socket, over raw sockets: the request line, the headers, the time to send them.

The sizes against a real `eventcore serve` with its defaults; the time bound against the same
protocol class in an in-process uvicorn, narrowed to half a second so the test need not wait 30.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from tests.support.processes import Server, free_port, serve

from eventcore.defaults import MAX_HEADER_BYTES, MAX_REQUEST_LINE_BYTES
from eventcore.entrypoints.http.server import BoundedHttpToolsProtocol

pytestmark = pytest.mark.integration

# Not a performance bound: how long a test waits for the server to close before failing.
PATIENCE_SECONDS = 10.0


def exchange(port: int, data: bytes, *, shut: bool = False) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_SECONDS) as conn:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            conn.sendall(data)
            if shut:
                conn.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                received += chunk
    return received


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("socket-bounds")
    logs = workdir / "logs"
    logs.mkdir()
    with serve(workdir, logs, "api") as running:
        yield running


def request(target: str = "/health/live", extra: bytes = b"") -> bytes:
    return (
        b"GET "
        + target.encode()
        + b" HTTP/1.1\r\nHost: x\r\n"
        + extra
        + b"Connection: close\r\n\r\n"
    )


def test_headers_over_the_bound_are_431_and_the_connection_closed(server: Server) -> None:
    answer = exchange(
        server.port, request(extra=b"X-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n")
    )
    assert status_of(answer) == 431
    assert b'"code":"request_header_fields_too_large"' in answer
    # Many headers add up the same way.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(70))
    assert status_of(exchange(server.port, request(extra=many))) == 431


def test_a_request_line_over_the_bound_is_414(server: Server) -> None:
    answer = exchange(server.port, request("/" + "a" * MAX_REQUEST_LINE_BYTES))
    assert status_of(answer) == 414
    assert b'"code":"uri_too_long"' in answer


def test_requests_within_the_bounds_are_served(server: Server) -> None:
    near = b"X-Near: " + b"c" * (MAX_HEADER_BYTES - 1000) + b"\r\n"
    answer = exchange(server.port, request(extra=near))
    assert status_of(answer) == 200, answer[:300]
    assert status_of(exchange(server.port, request("/health/live?" + "q" * 4000))) == 200
    # The refusals above left the server serving.
    assert server.client.get("/health/live").status_code == 200


class _Narrow(BoundedHttpToolsProtocol):
    request_timeout = 0.5


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = b"%d" % len(body)
    headers = [(b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def narrow_server() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _echo, host="127.0.0.1", port=port, http=_Narrow, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait for)
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def slowly(port: int, parts: list[bytes], pause: float) -> bytes:
    """Send ``parts`` with ``pause`` seconds between them, then read until closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            with contextlib.suppress(ConnectionError):
                writer.write(part)
                await writer.drain()
            await asyncio.sleep(pause)
        async with asyncio.timeout(PATIENCE_SECONDS):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize(
    "parts",
    [
        [],  # connects and sends nothing
        [b"POST /echo HTTP/1.1\r\nHost: x\r\n"],  # headers never end
        [b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"x" * 10],  # body
    ],
    ids=["silent", "half-sent-headers", "half-sent-body"],
)
async def test_a_request_not_sent_in_time_is_408_and_closed(parts: list[bytes]) -> None:
    async with narrow_server() as port:
        answer = await slowly(port, parts, 0.0)
    assert status_of(answer) == 408
    assert b'"code":"request_timeout"' in answer


async def test_a_request_sent_in_pieces_within_the_time_is_served() -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
    async with narrow_server() as port:
        answer = await slowly(port, [head, b"abc", b"def"], 0.05)
    assert status_of(answer) == 200
    assert answer.endswith(b"6")
