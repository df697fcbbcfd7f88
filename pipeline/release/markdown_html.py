"""The small Markdown subset the datasheet is written in, rendered to HTML, and the escaping that
keeps text from the data (titles, owner names, URLs) plain text in both.

Blocks: ATX headings (`#`..`######`), paragraphs, `- ` lists (continuation lines indented), pipe
tables (header, `|---|` rule, rows) and a line holding only an image (`![alt](src)`, a figure).
Inline: backslash escapes, `code`, **strong**, [links](url) and `<span>\\$</span>` (a dollar sign, as
`escape_markdown` writes one). Nothing else is markup, other raw HTML included: every character of text
goes out through `html.escape`. A link becomes an `<a href>` only for an http(s) URL, an image only
for a relative path inside the release or an http(s) URL; anything else (javascript:, data:, `..`)
stays text, so no input can make the page run or fetch anything but its own plots.
"""

from __future__ import annotations

import html
import re

from pipeline.io.published_text import published_text

# An absolute http(s) URL made only of the characters a URL may hold (RFC 3986): no whitespace,
# control characters, quotes or angle brackets (as pipeline/release/review.py checks its links).
_HTTP_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)
# A file of the release itself: relative, no parent steps, no scheme, no query.
_OWN_FILE = re.compile(r"(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./-]*")
# Every ASCII punctuation character may be backslash-escaped (as in CommonMark).
_PUNCTUATION = r"!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~"
# What escape_markdown escapes: what starts markup here, in CommonMark (raw HTML, entities) or GFM (~, |).
_SPECIAL = re.compile(r"([\\`*_\[\]()|<>&!#~])")
# What would start a block at the front of a line (a list item, a rule, a setext underline), escaped where the text
# begins: a title "-" written after a list item's "- " made a list inside it on GitHub.
_LEADING_BLOCK = re.compile(r"^[-+=](?=\s|[-+=\s]*$)|^\d{1,9}(?=\.(?:\s|$))")
# Where GitHub's Markdown (GFM's autolink extension) makes a link of plain text: "www." and "scheme://". A title
# "see www.x.example" became a link to it on GitHub; an escaped "." or ":" keeps it text there and here.
# (An e-mail address still becomes a mailto: link on GitHub, escaped or not: no escape stops it.)
_AUTOLINK = re.compile(r"(?i)(?<=www)\.|(?<=[a-z]):(?=//)")
# A dollar sign of the data, as escape_markdown writes it (`_DOLLAR`).
_INLINE = re.compile(
    r"(?P<dollar><span>\\\$</span>)"
    rf"|\\(?P<escaped>[{_PUNCTUATION}])"
    r"|`(?P<code>[^`]*)`"
    r"|!?\[(?P<text>(?:\\.|[^\]\\])*)\]\((?P<url>[^()\s]*)\)"
    r"|\*\*(?P<strong>(?:\\.|[^*\\])+)\*\*"
)
_IMAGE_LINE = re.compile(r"!\[(?P<alt>(?:\\.|[^\]\\])*)\]\((?P<src>[^()\s]*)\)")
_HEADING = re.compile(r"(#{1,6}) +(.*)")
_TABLE_RULE = re.compile(r"\|?( *:?-+:? *\|)+( *:?-+:? *)?")
_ROW_TOKEN = re.compile(r"\\.|\||[^\\|]+|\\")  # an escape, a cell separator, or text


# A dollar sign of the data. GitHub (and GitLab, and many viewers) render `$...$` and `$$...$$` as LaTeX math: a title
# `$\color{red}{\text{CC0}}$` showed as red words the photographer never wrote, `$$\href{...}{x}$$` as a link. A "$"
# alone in a <span> is GitHub's documented literal dollar sign (`\$` alone is reported to open math there still), and
# `\$` is one where a backslash escapes it (pandoc, GitLab, KaTeX and MathJax setups); a viewer without math shows
# "$" either way (one that shows no raw HTML shows the span's tags too).
_DOLLAR = "<span>\\$</span>"


def escape_markdown(text: str) -> str:
    """Text from the data, made safe to paste into a Markdown line: whitespace (newlines included)
    collapsed to single spaces, so it can start no block, every character that could start
    markup backslash-escaped and each "$" written `_DOLLAR` (no math), so it renders as exactly these words here and
    on any Markdown viewer. Also `plain_text`'s changes: no control character reaches the line, nor what
    `published_text` drops."""
    escaped = _SPECIAL.sub(r"\\\1", " ".join(plain_text(text).split()))
    escaped = _LEADING_BLOCK.sub(lambda match: match[0] + "\\" if match[0][0].isdigit() else "\\" + match[0],
                                 escaped)
    return _AUTOLINK.sub(lambda match: "\\" + match[0], escaped).replace("$", _DOLLAR)


# Control characters but whitespace: a terminal showing the file obeys them (ESC starts a sequence).
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


def plain_text(text: str) -> str:
    """`text` as a published text file shows it (`published_text`: no bidi formatting, which reordered the rest of a
    line; no tag characters but a flag's, words no one sees; at most a few combining marks on a character, which drew
    over other lines), and with U+FFFD for each control character that is not whitespace, for a published text file
    (Markdown, HTML)."""
    return _CONTROLS.sub("\ufffd", published_text(text))


def markdown_link(text: str, url: str) -> str:
    """A Markdown link to `url` with `text` (already Markdown) when the URL is plain http(s) and holds
    no parenthesis (which would end the link); otherwise the text with the URL beside it, escaped."""
    if _HTTP_URL.fullmatch(url) and "(" not in url and ")" not in url:
        return f"[{text}]({url})"
    return f"{text} ({escape_markdown(url)})" if url.strip() else text


def _plain(markdown: str) -> str:
    """The text of inline Markdown without its markup (for alt text and heading ids)."""
    return _INLINE.sub(lambda m: "$" if m["dollar"] else m["escaped"] or m["code"] or m["text"] or m["strong"] or "",
                       markdown)


def inline(markdown: str) -> str:
    """Inline Markdown -> HTML; everything that is not markup is escaped text."""
    out: list[str] = []
    position = 0
    for match in _INLINE.finditer(markdown):
        out.append(html.escape(markdown[position:match.start()]))
        position = match.end()
        if match["dollar"] is not None:
            out.append("$")
        elif match["escaped"] is not None:
            out.append(html.escape(match["escaped"]))
        elif match["code"] is not None:
            out.append(f"<code>{html.escape(match['code'])}</code>")
        elif match["strong"] is not None:
            out.append(f"<strong>{inline(match['strong'])}</strong>")
        elif match[0].startswith("!"):  # an image inside text: only its alt text
            out.append(html.escape(_plain(match["text"])))
        elif _HTTP_URL.fullmatch(match["url"]):
            out.append(f'<a href="{html.escape(match["url"])}">{inline(match["text"])}</a>')
        else:  # not http(s): the words and the URL as text, never a link
            out.append(f"{inline(match['text'])} ({html.escape(match['url'])})")
    out.append(html.escape(markdown[position:]))
    return "".join(out)


def _figure(line: str) -> str | None:
    match = _IMAGE_LINE.fullmatch(line.strip())
    if not match:
        return None
    alt = html.escape(_plain(match["alt"]))
    src = match["src"]
    if not (_OWN_FILE.fullmatch(src) or _HTTP_URL.fullmatch(src)):
        return f"<p>{alt} ({html.escape(src)})</p>"
    return f'<figure><img src="{html.escape(src)}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _plain(text).lower()).strip("-") or "section"


def _cells(row: str) -> list[str]:
    """'| a | b \\| c |' -> ['a', 'b \\| c']: split at the pipes that are not escaped."""
    cells = [""]
    for token in _ROW_TOKEN.findall(row.strip().removeprefix("|")):
        if token == "|":
            cells.append("")
        else:
            cells[-1] += token
    if len(cells) > 1 and not cells[-1].strip():  # the row's closing pipe
        cells.pop()
    return [cell.strip() for cell in cells]


def _table(lines: list[str]) -> str:
    head = "".join(f"<th>{inline(cell)}</th>" for cell in _cells(lines[0]))
    body = "".join("<tr>" + "".join(f"<td>{inline(cell)}</td>" for cell in _cells(row)) + "</tr>"
                   for row in lines[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _list(lines: list[str]) -> str:
    items: list[list[str]] = []
    for line in lines:
        if line.startswith("- "):
            items.append([line[2:].strip()])
        else:
            items[-1].append(line.strip())
    return "<ul>" + "".join(f"<li>{inline(chr(10).join(item))}</li>" for item in items) + "</ul>"


def _blocks(markdown: str) -> list[list[str]]:
    """Lines grouped into blocks: a blank line ends one, and a heading or image line is one by itself."""
    blocks: list[list[str]] = [[]]
    for line in markdown.splitlines():
        if not line.strip():
            blocks.append([])
        elif _HEADING.fullmatch(line) or _IMAGE_LINE.fullmatch(line.strip()):
            blocks += [[line], []]
        elif line.startswith("- ") and blocks[-1] and not blocks[-1][0].startswith("- "):
            blocks.append([line])  # a list right under a paragraph starts its own block
        else:
            blocks[-1].append(line)
    return [block for block in blocks if block]


def render(markdown: str) -> str:
    """The Markdown subset -> an HTML fragment."""
    out: list[str] = []
    for block in _blocks(markdown):
        first = block[0]
        heading = _HEADING.fullmatch(first)
        if heading:
            level = len(heading[1])
            out.append(f'<h{level} id="{_slug(heading[2])}">{inline(heading[2].strip())}</h{level}>')
        elif (figure := _figure(first)) is not None:
            out.append(figure)
        elif first.startswith("- "):
            out.append(_list(block))
        elif first.lstrip().startswith("|") and len(block) >= 2 and _TABLE_RULE.fullmatch(block[1].strip()):
            out.append(_table(block))
        else:
            out.append(f"<p>{inline(chr(10).join(line.strip() for line in block))}</p>")
    return "\n".join(out)
