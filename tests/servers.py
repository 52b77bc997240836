"""Real servers on 127.0.0.1 standing in for Slack (webhooks and the Web API) and an SMTP relay.

Used by the notifier tests (in-process) and the e2e DAG tests (reached from the ``airflow dags
test`` subprocess). Nothing is mocked: the notifiers talk HTTP and SMTP to these.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# --- HTTP (Slack) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers (e.g. ``Retry-After``), body, and a delay before it."""

    status: int = 200
    body: str | dict[str, Any] = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        """The body as JSON (Slack's Web API client may also send form data; both are handled)."""
        text = self.body.decode()
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            from urllib.parse import parse_qs

            return {k: v[0] for k, v in parse_qs(text).items()}
        return json.loads(text)


@dataclass
class SlackMessage:
    """A message the Web API stand-in holds: its channel id, ``ts``, the ``thread_ts`` of the
    thread it replies in (``None`` for a top-level message), its text and blocks, and how often
    ``chat.update`` edited it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edits: int = 0

    @property
    def header(self) -> str:
        """The text of its header block (``""`` without one)."""
        for block in self.blocks:
            if block.get("type") == "header":
                return str(block["text"]["text"])
        return ""

    @property
    def body(self) -> str:
        """The text of all its blocks, one line each (headers, sections, context elements)."""
        lines: list[str] = []
        for block in self.blocks:
            if isinstance(block.get("text"), dict):
                lines.append(str(block["text"].get("text", "")))
            for element in block.get("elements", []) or []:
                if isinstance(element, dict) and isinstance(element.get("text"), str):
                    lines.append(element["text"])
        return "\n".join(lines)


class SlackServer:
    """A threaded HTTP server recording every request and answering from a scripted queue.

    Unscripted requests get Slack's normal answers: ``200 ok`` for webhooks, and for the Web API
    (``/api/<method>``) what Slack answers:

    - ``chat.postMessage`` stores the message in its channel (a name such as ``#ml`` gets a stable
      id ``C…``; an id ``C…`` is used as is) and answers ``{"ok": true, "channel": "C…", "ts":
      "1700000000.000100", "message": {...}}`` with a new ``ts`` each time; with ``thread_ts`` it is
      a reply in that thread (``thread_not_found`` when the channel holds no such top-level
      message, as Slack answers for a deleted parent);
    - ``chat.update`` replaces the text and blocks of a stored message (``channel`` must be the
      id; ``channel_not_found`` for a name, ``message_not_found`` for an unknown or deleted ``ts``,
      ``cant_update_message`` for a ``ts`` in :attr:`uneditable`);
    - with ``tokens`` given, any other bearer token is ``invalid_auth`` (HTTP 200, as Slack does);
      an unknown method is ``unknown_method``.

    :attr:`messages` holds every stored message in order; :meth:`thread`, :meth:`parents` and
    :meth:`delete` read and change them.
    """

    def __init__(self, tokens: set[str] | None = None) -> None:
        self.requests: list[Request] = []
        self.messages: list[SlackMessage] = []
        self.tokens = tokens
        #: ``ts`` of messages ``chat.update`` refuses (``cant_update_message``).
        self.uneditable: set[str] = set()
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._next_ts = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                reply = server._record(request)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = (
                    json.dumps(reply.body).encode() if isinstance(reply.body, dict) else reply.body.encode()
                )
                content_type = "application/json" if isinstance(reply.body, dict) else "text/plain"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _record(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
            if request.path.startswith("/api/"):
                return self._web_api(request)
        return Reply(200, "ok")

    # --- the Web API ----------------------------------------------------------------------------

    @staticmethod
    def channel_id(channel: str) -> str:
        """The id a channel name gets (``#ml`` -> ``C`` and 8 hex digits); an id is kept."""
        import hashlib

        name = channel.strip()
        if name.startswith(("C", "G", "D")) and name[1:].isalnum() and name.upper() == name:
            return name
        return "C" + hashlib.sha256(name.lstrip("#").encode()).hexdigest()[:8].upper()

    def _web_api(self, request: Request) -> Reply:
        def error(code: str) -> Reply:
            return Reply(200, {"ok": False, "error": code})

        if self.tokens is not None:
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if token not in self.tokens:
                return error("invalid_auth")
        try:
            body = request.json if request.body else {}
        except ValueError:
            return error("invalid_json")
        blocks = body.get("blocks") or []
        if isinstance(blocks, str):  # form-encoded clients send blocks as JSON text
            blocks = json.loads(blocks)
        method = request.path.removeprefix("/api/").split("?")[0]
        if method == "chat.postMessage":
            if not body.get("channel"):
                return error("channel_not_found")
            channel = self.channel_id(str(body["channel"]))
            thread_ts = body.get("thread_ts") or None
            if thread_ts is not None and self._find(channel, str(thread_ts), top_level=True) is None:
                return error("thread_not_found")
            self._next_ts += 1
            message = SlackMessage(
                channel=channel,
                ts=f"{1700000000 + self._next_ts}.{self._next_ts:06d}",
                text=str(body.get("text", "")),
                blocks=list(blocks),
                thread_ts=str(thread_ts) if thread_ts is not None else None,
                reply_broadcast=str(body.get("reply_broadcast", "")).lower() in ("true", "1"),
            )
            self.messages.append(message)
            return Reply(
                200, {"ok": True, "channel": channel, "ts": message.ts, "message": self._dump(message)}
            )
        if method == "chat.update":
            channel = str(body.get("channel", ""))
            if self.channel_id(channel) != channel:
                return error("channel_not_found")
            found = self._find(channel, str(body.get("ts", "")), top_level=False)
            if found is None:
                return error("message_not_found")
            if found.ts in self.uneditable:
                return error("cant_update_message")
            found.text = str(body.get("text", found.text))
            found.blocks = list(blocks) if blocks else found.blocks
            found.edits += 1
            return Reply(200, {"ok": True, "channel": channel, "ts": found.ts, "text": found.text})
        return error("unknown_method")

    def _find(self, channel: str, ts: str, *, top_level: bool) -> SlackMessage | None:
        for message in self.messages:
            if message.channel == channel and message.ts == ts:
                return message if not (top_level and message.thread_ts) else None
        return None

    @staticmethod
    def _dump(message: SlackMessage) -> dict[str, Any]:
        data = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
        if message.thread_ts:
            data["thread_ts"] = message.thread_ts
        return data

    def parents(self, channel: str | None = None) -> list[SlackMessage]:
        """The top-level messages (of ``channel``, a name or id), in order."""
        with self._lock:
            wanted = self.channel_id(channel) if channel else None
            return [m for m in self.messages if m.thread_ts is None and wanted in (None, m.channel)]

    def thread(self, parent: SlackMessage) -> list[SlackMessage]:
        """The replies in ``parent``'s thread, in order."""
        with self._lock:
            return [m for m in self.messages if m.channel == parent.channel and m.thread_ts == parent.ts]

    def delete(self, message: SlackMessage) -> None:
        """Delete a message (as a person in the channel would): updates and replies to it fail."""
        with self._lock:
            self.messages.remove(message)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._lock:
            self._replies.extend(replies)

    def received(self, path_prefix: str = "") -> list[Request]:
        """The requests received so far (on paths starting with ``path_prefix``)."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def start(self) -> SlackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --- SMTP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        delay = self.server.pop_delay()
        if delay:
            await asyncio.sleep(delay)
        raw = bytes(envelope.original_content or envelope.content)
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.server.envelopes.append(
            Envelope(str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], message, raw)
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    """An aiosmtpd server collecting envelopes. With ``login``/``password`` it offers AUTH (without
    TLS, as a local relay would) and accepts only those credentials."""

    def __init__(self, login: str | None = None, password: str | None = None) -> None:
        self.envelopes: list[Envelope] = []
        self.auth_attempts: list[str] = []
        self._delays: deque[float] = deque()
        self.login = login
        self.password = password
        kwargs: dict[str, Any] = {}
        if login is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, secret = data.login.decode(), data.password.decode()
            self.auth_attempts.append(user)
            if user == self.login and secret == self.password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def delay_next(self, *seconds: float) -> None:
        """Wait this long before answering the next DATA commands (to provoke client timeouts)."""
        self._delays.extend(seconds)

    def pop_delay(self) -> float:
        return self._delays.popleft() if self._delays else 0.0

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def connection_fields(self, **extra: Any) -> dict[str, Any]:
        """Airflow connection fields (type ``smtp``) for this server, without TLS or SSL."""
        fields: dict[str, Any] = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, **extra},
        }
        if self.login is not None:
            fields["login"] = self.login
            fields["password"] = self.password
        return fields


# --- TCP (a database outage) -------------------------------------------------------------------


class TcpProxy:
    """A threaded TCP proxy on 127.0.0.1 in front of ``target`` (e.g. the local PostgreSQL) that a
    test switches off and on, to give a client a real outage.

    :meth:`stop` closes the listening socket and every open connection, so new connections are
    refused (``ECONNREFUSED``) and open ones see the server close them; :meth:`start` listens again
    on the same port. Bytes are copied unchanged in both directions.
    """

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.accepted = 0  # connections accepted over the proxy's life
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        """Listen (again) on :attr:`port`."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)  # so the accept loop notices stop() promptly
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._open = set(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self.accepted += 1
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended: end both, as a server that went away would.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            source.close()
            sink.close()


# --- HTTP (PagerDuty Events API v2) ------------------------------------------------------------


class PagerDutyServer(SlackServer):
    """PagerDuty's Events API v2 on 127.0.0.1: ``POST /v2/enqueue`` answers ``202`` with
    ``{"status": "success", "dedup_key": ...}`` (the event's key, or a new one for a trigger
    without), and ``400`` as PagerDuty does for an event it rejects: an unknown routing key (when
    ``routing_keys`` is given), an unknown ``event_action``, a resolve without ``dedup_key``, a
    trigger without ``payload.summary``/``source``/``severity``, a severity PagerDuty does not know,
    or a summary over 1024 characters. Scripted replies (:meth:`script`) come first, as for Slack.

    :attr:`alerts` follows PagerDuty's alert lifecycle per ``dedup_key``: ``triggered`` by a
    trigger, ``resolved`` by a resolve; :attr:`opened` counts the triggers that opened an alert
    (a trigger for an already triggered key is folded into it, as PagerDuty does).
    """

    SEVERITIES = ("critical", "error", "warning", "info")

    def __init__(self, routing_keys: set[str] | None = None) -> None:
        super().__init__()
        self.routing_keys = routing_keys
        self.alerts: dict[str, str] = {}
        self.opened: dict[str, int] = {}
        self._next = 0

    def _record(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
            if request.path != "/v2/enqueue":
                return Reply(404, {"status": "not found"})
            return self._enqueue(request)

    def _enqueue(self, request: Request) -> Reply:
        def invalid(*errors: str) -> Reply:
            return Reply(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}
            )

        try:
            event = json.loads(request.body.decode())
        except ValueError:
            return invalid("Body is not JSON")
        if not isinstance(event, dict):
            return invalid("Event must be an object")
        if self.routing_keys is not None and event.get("routing_key") not in self.routing_keys:
            return invalid("Invalid routing key")
        action = event.get("event_action")
        key = event.get("dedup_key")
        if action not in ("trigger", "acknowledge", "resolve"):
            return invalid("'event_action' is invalid")
        if action == "trigger":
            payload = event.get("payload") or {}
            missing = [f for f in ("summary", "source", "severity") if not payload.get(f)]
            if missing:
                return invalid(*(f"'payload.{f}' is missing or blank" for f in missing))
            if payload["severity"] not in self.SEVERITIES:
                return invalid("'payload.severity' is invalid")
            if len(str(payload["summary"])) > 1024:
                return invalid("'payload.summary' is longer than 1024 characters")
            if not key:
                self._next += 1
                key = f"generated-{self._next}"
            if self.alerts.get(key) != "triggered":
                self.opened[key] = self.opened.get(key, 0) + 1
            self.alerts[key] = "triggered"
        else:
            if not key:
                return invalid("'dedup_key' is required for this event_action")
            if action == "resolve" and key in self.alerts:
                self.alerts[key] = "resolved"
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def events(self) -> list[dict[str, Any]]:
        """The bodies of the events received on ``/v2/enqueue``, in order."""
        return [r.json for r in self.received("/v2/enqueue")]

    def start(self) -> PagerDutyServer:
        super().start()
        return self
