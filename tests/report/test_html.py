"""The report's Markdown subset (what cnnexp writes into run descriptions) as HTML."""

from __future__ import annotations

from cnnexp.report.html import img, markdown, page


def test_table_with_escaped_pipes_and_verdict_colours():
    md = ("**sanity digits**: FAILED\n\n| check | verdict | measured |\n|---|---|---|\n"
          "| data | ✓ pass | mean \\|max\\| 0.01 |\n| lr-range | fail | `never` went down |\n")
    out = markdown(md)
    assert "<p><strong>sanity digits</strong>: FAILED</p>" in out
    assert "<th>check</th><th>verdict</th><th>measured</th>" in out
    assert "<td>mean |max| 0.01</td>" in out
    assert '<td class="pass">✓ pass</td>' in out and '<td class="fail">fail</td>' in out
    assert "<td>mean |max| 0.01</td>" in out  # no verdict word: no colour
    assert "<code>never</code>" in out
    assert out.count("<tr>") == 3


def test_lists_paragraphs_and_escaping():
    out = markdown("Remedies:\n- add `reg=full` <now>\n- more data\n\nplain & simple")
    assert out == ("<p>Remedies:</p>\n<ul><li>add <code>reg=full</code> &lt;now&gt;</li>"
                   "<li>more data</li></ul>\n<p>plain &amp; simple</p>")


def test_page_is_self_contained():
    html = page("t <1>", "sub", [img(b"\x89PNG...", "alt", "cap")])
    assert html.startswith("<!doctype html>") and "<title>t &lt;1&gt;</title>" in html
    assert 'src="data:image/png;base64,iVBORy4uLg=="' in html and "<figcaption>cap" in html
    assert "http" not in html
