"""The live view over real HTTP: the app `eventcore serve` builds, served by uvicorn (with the
server's own protocol) on a free port in a thread, and a Server-Sent Events reader.

The in-process test client collects a whole answer before it returns, which a stream never
ends; so these tests talk to a real socket."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.http.support import PASSWORD, Account, Tenant, embedded_app, refuse_server_errors
from tests.http.support import unique_email as new_email
from tests.support.processes import free_port

PROTOCOL = "eventcore.entrypoints.http.server:BoundedHttpToolsProtocol"


@dataclass
class Frame:
    """One SSE message: its event name, id and data (a comment has the name ":")."""

    event: str
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class EventStream:
    """A live stream read in a thread of its own, frame by frame (or not at all: ``paused``
    leaves what the server sends in the socket until :meth:`resume`)."""

    def __init__(self, client: httpx.Client, url: str, headers: dict[str, str], paused: bool):
        self.frames: queue.Queue[Frame | None] = queue.Queue()
        self._go = threading.Event()
        if not paused:
            self._go.set()
        self._response = client.send(client.build_request("GET", url, headers=headers), stream=True)
        self.status = self._response.status_code
        self.headers = self._response.headers
        self.ended = threading.Event()
        self.failed: Exception | None = None
        if self.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self._response.read()
            self.ended.set()

    def json(self) -> Any:
        return self._response.json()

    @property
    def response(self) -> httpx.Response:
        return self._response

    def resume(self) -> None:
        self._go.set()

    def _read(self) -> None:
        frame: dict[str, str] = {}
        data: list[str] = []
        self._go.wait()
        try:
            for line in self._response.iter_lines():
                if line.startswith(":"):
                    self.frames.put(Frame(":", line[1:].strip()))
                elif line == "":
                    if frame or data:
                        self.frames.put(
                            Frame(frame.get("event", "message"), "\n".join(data), frame.get("id"))
                        )
                    frame, data = {}, []
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        data.append(value)
                    else:
                        frame[name] = value
        except (httpx.HTTPError, RuntimeError) as exc:
            # A response cut off (no last chunk), or closed here.
            self.failed = exc
        finally:
            self.ended.set()
            self.frames.put(None)

    def next(self, within: float = 2.0, *, comments: bool = False) -> Frame | None:
        """The next frame within ``within`` seconds (comments skipped unless asked); None once
        the stream ended; AssertionError if nothing came."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            try:
                frame = self.frames.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"no frame within {within} s") from None
            if frame is None:
                self.frames.put(None)
                return None
            if frame.event != ":" or comments:
                return frame

    def events(self, count: int, within: float = 2.0) -> list[Frame]:
        found = []
        for _ in range(count):
            frame = self.next(within)
            assert frame is not None, f"the stream ended after {found}"
            found.append(frame)
        return found

    def quiet(self, seconds: float = 0.5) -> bool:
        """Whether nothing but comments arrives for ``seconds``."""
        try:
            frame = self.next(seconds)
        except AssertionError:
            return True
        return frame is None

    def close(self) -> None:
        """Close the connection as a client that goes away does: at once, even while the
        reader thread waits on it (a close from another thread alone would wait for it)."""
        self._go.set()
        stream = self._response.extensions.get("network_stream")
        raw = stream.get_extra_info("socket") if stream is not None else None
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
        self._response.close()


@dataclass
class LiveServer:
    """The app on a real socket, with helpers in the public contract's words."""

    url: str
    client: httpx.Client
    streams: list[EventStream] = field(default_factory=list)

    def signup(self, workspace: str = "Acme") -> Account:
        email = new_email("owner")
        response = self.client.post(
            "/v1/auth/signup", json={"email": email, "password": PASSWORD, "workspace": workspace}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Account(email, body["user_id"], body["workspace_id"], body["access_token"])

    def tenant(self, workspace: str = "Acme") -> Tenant:
        owner = self.signup(workspace)
        project = self.client.post("/v1/projects", json={"name": "web"}, headers=owner.headers)
        assert project.status_code == 201, project.text
        project_id = project.json()["id"]
        key = self.client.post(
            f"/v1/projects/{project_id}/api-keys", json={"name": "k"}, headers=owner.headers
        )
        assert key.status_code == 201, key.text
        return Tenant(owner, project_id, key.json()["id"], key.json()["key"])

    def member(self, owner: Account, role: str) -> Account:
        user = self.signup("Their own")
        invitation = self.client.post(
            "/v1/members", json={"email": user.email, "role": role}, headers=owner.headers
        )
        assert invitation.status_code == 201, invitation.text
        token = invitation.json()["token"]
        accepted = self.client.post(f"/v1/invitations/{token}/accept", headers=user.headers)
        assert accepted.status_code == 200, accepted.text
        login = self.client.post(
            "/v1/auth/login",
            json={"email": user.email, "password": PASSWORD, "workspace_id": owner.workspace_id},
        )
        assert login.status_code == 200, login.text
        return Account(user.email, user.user_id, owner.workspace_id, login.json()["access_token"])

    def ingest(self, tenant: Tenant, events: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.client.post(
            "/v1/ingest", json={"events": events}, headers=tenant.key_headers
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def listed(self, account: Account, project_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            "/v1/events", params={"project_id": project_id, "limit": 1000}, headers=account.headers
        )
        assert response.status_code == 200, response.text
        return list(response.json()["events"])

    def stream_url(self, path: str) -> EventStream:
        """A stream opened at ``path`` as given (a ticket's `url`), without credentials."""
        stream = EventStream(self.client, f"{self.url}{path}", {}, paused=False)
        self.streams.append(stream)
        if stream.status == 200:
            first = stream.next(5.0, comments=True)
            assert first is not None
            assert first.data == "live", first
        return stream

    def stream(
        self,
        params: dict[str, str],
        headers: dict[str, str] | None = None,
        *,
        paused: bool = False,
    ) -> EventStream:
        """A stream opened with ``params``; when it is one, its first frame (`: live`) read."""
        url = str(httpx.URL(f"{self.url}/v1/events/live", params=params))
        stream = EventStream(self.client, url, headers or {}, paused)
        self.streams.append(stream)
        if stream.status == 200 and not paused:
            first = stream.next(5.0, comments=True)
            assert first is not None
            assert (first.event, first.data) == (":", "live"), first
        return stream


@contextmanager
def live_server(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """The app of ``env`` (embedded unless it says otherwise) served on 127.0.0.1; stopped as
    a server stops (its open streams ended), and checked to have stopped."""
    app, _, _ = embedded_app(data_dir, env)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            http=PROTOCOL,
            timeout_graceful_shutdown=10,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start in time"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(
        base_url=url, timeout=10, event_hooks={"response": [refuse_server_errors]}
    )
    live = LiveServer(url, client)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(20)
        for stream in live.streams:
            stream.close()
        client.close()
        assert not thread.is_alive(), "the server did not stop"
