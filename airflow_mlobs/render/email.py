"""Email for results: a subject, a plain-text part and an HTML part saying the same."""

from __future__ import annotations

import html

from airflow_mlobs.core.notify import Kind
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.render.headline import headline, title
from airflow_mlobs.render.message import NO_LINKS, TABLE_HEADER, Links, rows_text, top_rows


def email_message(
    result: CheckResult, *, kind: Kind, consecutive: int = 1, links: Links = NO_LINKS
) -> tuple[str, str, str]:
    """``(subject, plain text, html)`` for an email with both parts (HTML-escaped throughout)."""
    subject = title(result, kind=kind, consecutive=consecutive)
    rows = top_rows(result) if kind != "recovery" else []
    line = headline(result)
    text_lines = [subject, "", result.summary]
    if line:
        text_lines += ["", line]
    if rows:
        text_lines += ["", rows_text(rows)]
    text_lines += [f"{label}: {url}" for label, url in links.labelled()]
    esc = html.escape
    parts = [f"<h2>{esc(subject)}</h2>", f"<p>{esc(result.summary)}</p>"]
    if line:
        parts.append(f"<p><em>{esc(line)}</em></p>")
    if rows:
        head = "".join(f"<th align='left'>{esc(h)}</th>" for h in TABLE_HEADER)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        parts.append(f"<table border='1' cellpadding='4' cellspacing='0'><tr>{head}</tr>{body}</table>")
    link_html = " | ".join(f"<a href='{esc(url)}'>{esc(label)}</a>" for label, url in links.labelled())
    if link_html:
        parts.append(f"<p>{link_html}</p>")
    return subject, "\n".join(text_lines) + "\n", "<html><body>" + "".join(parts) + "</body></html>"
