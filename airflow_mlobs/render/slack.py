"""Slack Block Kit messages for results: header, summary, key numbers, worst findings, links."""

from __future__ import annotations

from typing import Any

from airflow_mlobs.core.notify import Kind
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.render.headline import headline, title
from airflow_mlobs.render.message import NO_LINKS, Links, rows_text, top_rows

EMOJI = {
    Status.PASS: ":white_check_mark:",
    Status.WARN: ":warning:",
    Status.FAIL: ":red_circle:",
    Status.ERROR: ":x:",
}


def _buttons(links: Links) -> list[dict[str, Any]]:
    """An actions block with a button per link (none without links)."""
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
        for label, url in links.labelled()
    ]
    return [{"type": "actions", "elements": buttons}] if buttons else []


def slack_message(
    result: CheckResult, *, kind: Kind, consecutive: int = 1, links: Links = NO_LINKS
) -> dict[str, Any]:
    """A Slack message (Block Kit, with ``text`` as the notification fallback); texts are cut to
    Slack's limits (150 characters for a header, 3000 for a section)."""
    heading = title(result, kind=kind, consecutive=consecutive)
    emoji = EMOJI[Status.PASS if kind == "recovery" else result.status] if result.status in EMOJI else ""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": heading[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {result.summary}"[:3000]}},
    ]
    line = headline(result)
    if line:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    rows = top_rows(result) if kind != "recovery" else []
    if rows:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{rows_text(rows)}```"[:3000]}}
        )
    blocks += _buttons(links)
    return {"text": f"{heading}: {result.summary}"[:3000], "blocks": blocks}


def slack_thread_parent(*, heading: str, summary: str, state: str, links: Links = NO_LINKS) -> dict[str, Any]:
    """The parent message of an incident's thread as ``chat.update`` rewrites it: the original
    header (``heading``, the title of the message that opened the incident), the current state
    (``state``: "RESOLVED at ... after 3 runs", "ONGOING (2 runs): ..."), the original summary, and the link
    buttons; ``text`` (the notification fallback) is the state and the heading. Cut to Slack's
    limits as :func:`slack_message`."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": heading[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{state}*"[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": summary[:3000] or " "}]},
    ]
    blocks += _buttons(links)
    return {"text": f"{state}: {heading}"[:3000], "blocks": blocks}
