"""A stand-in for Slack during the demo: an HTTP server on 127.0.0.1 that accepts incoming-webhook
posts, as Slack does (``200 ok``), and keeps them so the demo can print what the team would see.

The demo points the Airflow connection ``mlobs_slack`` (type ``slackwebhook``) at it; nothing leaves
the machine.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SlackSink:
    """Collects Slack webhook messages (their JSON bodies) posted to any path."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    message = json.loads(body or b"{}")
                except ValueError:
                    message = {"text": body.decode(errors="replace")}
                with lock:
                    sink.messages.append(message)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._lock = lock
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: where the webhook connection points."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def take(self) -> list[dict[str, Any]]:
        """The messages received since the last call."""
        with self._lock:
            taken, self.messages = self.messages, []
        return taken

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def message_text(message: dict[str, Any]) -> str:
    """A Block Kit message as the plain lines a person reads in Slack."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":  # buttons: their labels
            labels = [(e.get("text") or {}).get("text", "") for e in block.get("elements") or []]
            lines.append("  ".join(f"[{label}]" for label in labels if label))
            continue
        texts = [block.get("text")] if block.get("text") else list(block.get("elements") or [])
        for text in texts:
            if isinstance(text, dict) and text.get("text"):
                lines.append(str(text["text"]).replace("```", ""))
    return "\n".join(lines) if lines else str(message.get("text", ""))
