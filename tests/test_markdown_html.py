"""The datasheet's Markdown subset rendered to HTML: structure kept, every character of text escaped,
links only to http(s), images only the release's own files (or http(s))."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from pipeline.release.markdown_html import escape_markdown, render


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text += data


def parsed(markdown: str) -> _Page:
    page = _Page()
    page.feed(render(markdown))
    page.close()
    return page


def test_blocks_and_inline_markup():
    out = render("# Title\n\nSome **bold** and `code`, a [link](https://example.org/a?b=1&c=2).\n"
                 "continued line\n\n## Part\n- one\n  more\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                 "![Licenses](datasheet/licenses.png)\n")
    assert '<h1 id="title">Title</h1>' in out and '<h2 id="part">Part</h2>' in out
    assert "<p>Some <strong>bold</strong> and <code>code</code>, a " in out
    assert '<a href="https://example.org/a?b=1&amp;c=2">link</a>.\ncontinued line</p>' in out
    assert "<ul><li>one\nmore</li><li>two</li></ul>" in out
    assert "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody></table>" \
        in out
    assert '<figure><img src="datasheet/licenses.png" alt="Licenses"><figcaption>Licenses</figcaption></figure>' in out


def test_links_and_images_go_only_where_they_may():
    page = parsed("[a](javascript:alert(1)) [b](data:text/html,x) [c]( https://x.org) ![d](../secret.png)\n\n"
                  "![e](https://evil.org/x.png \"t\")\n\n![f](javascript:x)\n")
    assert "a" not in page.tags and "img" not in page.tags
    assert not any(value.lower().startswith(("javascript", "data")) for _, value in page.attrs)


@given(st.text(max_size=200))
def test_escaped_data_is_only_ever_text(text):
    """Whatever a title says, once escaped it renders as exactly its own words (whitespace collapsed)
    and makes no element, however it tries."""
    page = parsed(f"- {escape_markdown(text)}")
    assert page.tags == ["ul", "li"]
    assert page.text == " ".join(text.split())
    table = parsed(f"| {escape_markdown(text)} | n |\n|---|---|\n|{escape_markdown(text)}|1|")
    assert table.tags == ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"]
    assert table.text == " ".join(text.split()) + "n" + " ".join(text.split()) + "1"


def test_hostile_title_is_escaped():
    title = '<script>alert(1)</script> [x](javascript:alert(1)) **b** `c` | d\n# e'
    out = render(f"| {escape_markdown(title)} | 1 |\n|---|---|\n")
    assert "<script" not in out and "&lt;script&gt;" in out and "href" not in out
    assert "<th>&lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1)) **b** `c` | d # e</th>" in out
