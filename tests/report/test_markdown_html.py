"""Markdown → HTML for reports (markdown-it-py, CommonMark + tables): what our reports write comes out whole."""

from __future__ import annotations

from lcsc.report import markdown_to_html
from lcsc.report.markdown_html import markdown_body

DOC = r"""# Title with EMA\*

- **DM** beats EMA\* (x < y)
- second: `2×`

| A | B \| C | **D** |
|---|:--:|---|
| 1 | 2 |
| <b> | x\*y | **edge** |

![FD vs NFE](fd_vs_nfe.png)
"""


def test_tables_lists_images_and_escapes_render() -> None:
    body = markdown_body(DOC)
    assert "<h1>Title with EMA*</h1>" in body
    assert "<li><strong>DM</strong> beats EMA* (x &lt; y)</li>" in body and "<code>2×</code>" in body
    assert "<th>A</th>" in body and "<th style=\"text-align:center\">B | C</th>" in body
    assert "<th><strong>D</strong></th>" in body
    assert body.count("<tr>") == 3 and "<td>&lt;b&gt;</td>" in body  # raw HTML is shown, not run
    assert "<td style=\"text-align:center\">x*y</td>" in body and "<td></td>" in body  # a short row is padded
    assert '<img src="fd_vs_nfe.png" alt="FD vs NFE" />' in body


def test_page_is_titled_by_the_first_heading_unless_given() -> None:
    page = markdown_to_html(DOC)
    assert page.startswith("<!doctype html>") and "<title>Title with EMA*</title>" in page
    assert markdown_body(DOC) in page
    assert "<title>a &lt;report&gt;</title>" in markdown_to_html("plain", title="a <report>")
    assert "<title>report</title>" in markdown_to_html("no heading at all")
