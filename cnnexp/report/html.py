"""A self-contained HTML page: a tiny Markdown subset (what cnnexp writes into run descriptions:
tables, bullets, bold, code, paragraphs), images inline as base64 PNG, one stylesheet."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1150px;
color:#1d232a;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #dde3ea;padding-bottom:.2em;
margin-top:2em}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #d3dae2;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f4f7}code{background:#f1f4f7;padding:0 3px;border-radius:3px}
img{max-width:100%;border:1px solid #e3e8ee;margin:.4em 0}.muted{color:#68737d}
.pass,.healthy,.helps{color:#11772d;font-weight:600}.warn,.not_converged{color:#a15c00;
font-weight:600}.fail,.overfitting,.underfitting,.unstable,.hurts{color:#b3261e;font-weight:600}
.warning{background:#fff6e0;border-left:4px solid #e0a100;padding:4px 10px;margin:.4em 0}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0;flex:1 1 420px}
figcaption{font-size:12px;color:#68737d}
"""

_VERDICT_WORDS = ("pass", "warn", "fail", "healthy", "not_converged", "overfitting",
                  "underfitting", "unstable", "helps", "hurts")


def inline(text: str) -> str:
    """Escape, then **bold**, `code`, and colour verdict words."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return out


def _cells(line: str) -> list[str]:
    """Cells of a table row; `\\|` is a literal pipe inside a cell."""
    parts = re.split(r"(?<!\\)\|", line.strip().removeprefix("|").removesuffix("|"))
    return [c.strip().replace("\\|", "|") for c in parts]


def _verdict_cell(text: str) -> str:
    """A short cell holding a verdict word ('✓ pass', 'overfitting 2/3') gets its colour."""
    words = text.lower().split()
    hit = next((w for w in words if w in _VERDICT_WORDS), None) if len(words) <= 3 else None
    cls = f' class="{hit}"' if hit else ""
    return f"<td{cls}>{inline(text)}</td>"


def markdown(text: str) -> str:
    """The Markdown subset cnnexp writes, as HTML."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("|") and i + 1 < len(lines) and \
                re.match(r"^\s*\|?\s*:?-{3,}", lines[i + 1]):
            head = _cells(line)
            i += 2
            body = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                body.append(_cells(lines[i]))
                i += 1
            out.append("<table><tr>" + "".join(f"<th>{inline(h)}</th>" for h in head) +
                       "</tr>" + "".join("<tr>" + "".join(_verdict_cell(c) for c in row) +
                                         "</tr>" for row in body) + "</table>")
            continue
        if line.lstrip().startswith(("- ", "* ")):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith(("- ", "* ")):
                items.append(f"<li>{inline(lines[i].lstrip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        if line.strip():
            para = [line.strip()]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(
                    ("|", "- ", "* ")):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(' '.join(para))}</p>")
            continue
        i += 1
    return "\n".join(out)


def img(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"{cap}</figure>")


def grid(figures: Sequence[str]) -> str:
    return f'<div class="grid">{"".join(figures)}</div>' if figures else ""


def table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" +
            "".join("<tr>" + "".join(_verdict_cell(str(c)) for c in row) + "</tr>"
                    for row in rows) + "</table>")


def warning(text: str) -> str:
    return f'<div class="warning">{inline(text)}</div>'


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{CSS}</style></head><body><h1>"
            f"{html.escape(title)}</h1><p class=muted>{inline(subtitle)}</p>"
            + "\n".join(sections) + "</body></html>\n")
