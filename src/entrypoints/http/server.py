"""The HTTP protocol `eventcore serve` runs: uvicorn's httptools protocol with bounds at the socket.

uvicorn's httptools protocol takes a request line and headers of any size and waits for a
half-sent request for ever: a 32 MB header grows the process by as much, and a client that
sends a few bytes a minute holds a connection and its buffers without end. This protocol
refuses, before the app sees anything:

- a request line (method, target, version) over ``max_request_line`` bytes: 414, then close;
- headers over ``max_header_bytes`` in all (names and values): 431, then close;
- a request not received in full (headers and body) within ``request_timeout`` seconds of its
  first byte, or a new connection that sends nothing for as long: 408, then close (if the app
  already answered, the connection is just closed).

The app's own body limit (``EVENTCORE_MAX_REQUEST_BYTES``) still applies to the body.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from eventcore.defaults import MAX_HEADER_BYTES, MAX_REQUEST_LINE_BYTES, REQUEST_TIMEOUT_SECONDS
from eventcore.entrypoints.http.live import SCOPE_KEY as LIVE_SCOPE_KEY

_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a request that is over a bound."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; the bounds are class attributes (tests narrow them)."""

    max_request_line = MAX_REQUEST_LINE_BYTES
    max_header_bytes = MAX_HEADER_BYTES
    request_timeout = REQUEST_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._line_bytes = 0
        self._refusal: tuple[int, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # Every request of the connection still being answered or waiting its turn (pipelined).
        self._cycles: weakref.WeakSet[RequestResponseCycle] = weakref.WeakSet()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._abandon()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._cycles.add(self.cycle)

    def _abandon(self) -> None:
        """Once the connection is closing, no request of it may write an answer: uvicorn marks
        only the newest request disconnected, and an earlier one still running (pipelined
        requests, then a bad one that is answered 400 and closes the connection) would write to
        the closed transport, which uvloop refuses with an error the server logs. Each is told
        the client is gone, as for a client that disconnects."""
        for cycle in list(self._cycles):
            cycle.disconnected = True
            cycle.message_event.set()
        self._cycles.clear()

    def shutdown(self) -> None:
        """The server is stopping: a live stream being served ends now (its last chunk sent),
        rather than holding the graceful shutdown until its client leaves."""
        cycle = getattr(self, "cycle", None)
        if cycle is not None and not cycle.response_complete:
            stream = cycle.scope.get("state", {}).get(LIVE_SCOPE_KEY)
            if stream is not None:
                stream.close()
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        # The parser stops on any exception a callback raises and uvicorn answers it 400; an
        # exceeded bound gets its own status instead.
        if self._refusal is None:
            super().send_400_response(msg)
            self._abandon()
            return
        status, text = self._refusal
        self._send_and_close(status, text)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._line_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._line_bytes += len(url)
        if self._line_bytes > self.max_request_line:
            self._refuse(414, f"The request line is longer than {self.max_request_line} bytes.")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.max_header_bytes:
            self._refuse(431, f"The request headers are larger than {self.max_header_bytes} bytes.")
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _refuse(self, status: int, text: str) -> None:
        self._refusal = (status, text)
        raise _Refused(text)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if cycle is not None and cycle.response_started:
            self.transport.close()
            self._abandon()
            return
        self._refusal = (408, f"The request was not received within {self.request_timeout} s.")
        self._send_and_close(*self._refusal)

    def _send_and_close(self, status: int, text: str) -> None:
        body = (
            b'{"error":{"code":"'
            + _REASONS[status].lower().replace(b" ", b"_")
            + b'","message":"'
            + text.encode("ascii")
            + b'"}}'
        )
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self._abandon()
