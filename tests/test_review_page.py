"""review/index.html in a real browser (headless Chromium): the page shows its photos, and its script
turns the reviewer's choices into the decisions CSV that `review apply` reads, by the same
formula-safe rules as the template. Skipped only when no Chromium is installed (scripts/setup
installs it with apt-get where it can)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
from PIL import Image

from pipeline.decisions_file import read_decisions
from pipeline.detectors.registry import load_registry
from pipeline.io.sinks import csv_bytes
from pipeline.release.review import apply_decisions, write_review
from tests.conftest import photo, real_jpeg

CHROMIUM = next((path for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (scripts/setup installs it)")

PERSON = dataclasses.replace(load_registry()["ssdlite_person"], thresholds={"person": 0.9},
                             review_band={"person": 0.6})
HOSTILE = '=HYPERLINK("http://evil","x")'


def _shown(photo_id: str, name: str, score: float):
    image = real_jpeg(name)
    return photo(photo_id, image=image, sha256=hashlib.sha256(image).hexdigest(),
                 scores=(("ssdlite_person.person", score),))


PHOTOS = [_shown("2", "chelsea.jpg", 0.85), _shown("1", "coffee.jpg", 0.7), _shown(HOSTILE, "rocket.jpg", 0.65)]
SEEN = {p.photo_id: p.sha256 for p in PHOTOS}  # each decision names the image the reviewer saw
COLUMNS = ("photo_id", "decision", "note", "sha256")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None  # for the type checker: the module is skipped without it
    # --no-sandbox: the tests may run as root (containers), where Chromium's sandbox refuses to start.
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, timeout=60, check=True)


@pytest.fixture
def page(tmp_path) -> Path:
    write_review(PHOTOS, str(tmp_path), [PERSON])
    return tmp_path / "review" / "index.html"


class _Pre(HTMLParser):
    """The text of <pre id=csv> and of <span id=progress> in a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        element_id = dict(attrs).get("id")
        if element_id in ("csv", "progress"):
            self._in = element_id
            self.texts[element_id] = ""

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in:
            self.texts[self._in] += data


def rendered(tmp_path: Path, page: Path, query: dict | list) -> dict[str, str]:
    url = page.as_uri() + ("?" + urlencode(query) if query else "")
    parser = _Pre()
    parser.feed(chromium(tmp_path, "--dump-dom", url).stdout.decode("utf-8"))
    return parser.texts


def test_screenshot_shows_the_photos(tmp_path, page):
    shot = tmp_path / "review.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,700", page.as_uri())
    assert shot.stat().st_size > 0
    with Image.open(shot) as image:
        assert image.size == (1000, 700)
        # The thumbnails are photographs: thousands of colours. A page whose images did not load (a
        # Content-Security-Policy too strict, a broken data: URL) is text on white, a few hundred.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 5000


def test_without_choices_the_csv_is_the_template(tmp_path, page):
    texts = rendered(tmp_path, page, {})
    assert texts["csv"].encode("utf-8") == (tmp_path / "review" / "decisions_template.csv").read_bytes()
    assert texts["progress"] == "0 of 3 decided"


def test_choices_become_a_csv_that_review_apply_reads(tmp_path, page):
    """The script ran (the page's CSP allowed it by its hash), took the decisions and notes, and wrote
    them with csv_cell's rules: formula-like ids and notes quoted and marked as text. review apply takes the
    photo numbers and the notes as the reviewer wrote them, and refuses, with its row, an id that is no
    photo number (no run holds one: the sources refuse it)."""
    note = 'reflection, in "window"'
    formula_note = "=cmd|' /C calc'!A0"  # a spreadsheet formula
    quoted = "'+1 (a quote the reviewer typed)"  # given back with its quote
    query = [("accept", "2"), ("note:2", quoted), ("reject_human", "1"), ("note:1", formula_note),
             ("reject_other", HOSTILE), (f"note:{HOSTILE}", note)]
    texts = rendered(tmp_path, page, query)
    assert texts["progress"] == "3 of 3 decided"
    expected = csv_bytes(COLUMNS, [("2", "accept", quoted, SEEN["2"]), ("1", "reject_human", formula_note, SEEN["1"]),
                                   (HOSTILE, "reject_other", note, SEEN[HOSTILE])])
    assert texts["csv"].encode("utf-8") == expected
    downloaded = tmp_path / "decisions.csv"
    downloaded.write_bytes(texts["csv"].encode("utf-8"))
    with pytest.raises(ValueError, match="line 4: photo_id"):
        apply_decisions(str(downloaded), str(tmp_path / "store.csv"))
    lines = texts["csv"].splitlines(keepends=True)
    downloaded.write_text("".join(lines[:3]), encoding="utf-8")  # the reviewer drops the row it named
    assert apply_decisions(str(downloaded), str(tmp_path / "store.csv")) == (2, 2)
    assert read_decisions(str(tmp_path / "store.csv")) == {"1": ("reject_human", formula_note, SEEN["1"]),
                                                           "2": ("accept", quoted, SEEN["2"])}


class _DevTools:
    """A minimal Chrome DevTools Protocol client over one websocket (flattened target sessions)."""

    def __init__(self, url: str) -> None:
        import websocket

        self._socket = websocket.create_connection(url, timeout=30)
        self._next = 0

    def call(self, method: str, session: str | None = None, **params) -> dict:
        import json

        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        while True:  # events arrive in between; the answer carries our id
            answer = json.loads(self._socket.recv())
            if answer.get("id") == self._next:
                assert "error" not in answer, answer
                return answer["result"]

    def close(self) -> None:
        self._socket.close()


def _two_notes_written(tmp_path, page, second: tuple[str, str], first: tuple[str, str]) -> tuple[dict, bytes]:
    """The page's texts once photo 2 and photo 1 are decided with a note each ((decision, note)), and the CSV
    `csv_cell`'s rules write for those decisions."""
    texts = rendered(tmp_path, page, [(second[0], "2"), ("note:2", second[1]), (first[0], "1"), ("note:1", first[1])])
    expected = csv_bytes(COLUMNS, [("2", *second, SEEN["2"]), ("1", *first, SEEN["1"]),
                                   (HOSTILE, "", "", SEEN[HOSTILE])])
    return texts, expected


def test_the_page_writes_a_note_by_every_rule_of_csv_cell(tmp_path, page):
    """A formula after a ';' (a spreadsheet splitting on ';' evaluated 'ok;=HYPERLINK(...)', and a typed
    "a;'=1" came back "a;=1") and a terminal escape in a note: the page writes what csv_cell writes."""
    inner = 'ok;=HYPERLINK("http://evil","x");\'=1'
    escape = "calm\x1b]52;c;cm0gLXJmIH4K\x07"
    texts, expected = _two_notes_written(tmp_path, page, ("accept", inner), ("reject_human", escape))
    assert texts["csv"].encode("utf-8") == expected
    assert b";'=HYPERLINK" in expected and b"\x1b" not in expected and "\ufffd".encode() in expected


def test_the_page_quotes_a_note_holding_a_line_or_paragraph_separator_as_csv_cell_does(tmp_path, page):
    """A note pasted from a PDF or a word processor holding U+2028 or U+2029: csv_cell quotes the cell (editors and
    `str.splitlines()` end a line there, splitting the row), the page wrote it bare."""
    pasted = "blurred figure\u2028in the window"
    other = "a reflection\u2029only"
    texts, expected = _two_notes_written(tmp_path, page, ("accept", pasted), ("reject_other", other))
    assert texts["csv"].encode("utf-8") == expected
    assert '"blurred figure\u2028in the window"' in texts["csv"]


def _wait_for(predicate, seconds: float = 20.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium with remote debugging on a port it picks (127.0.0.1 only)."""
    profile = tmp_path / "cdp-profile"
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        active = profile / "DevToolsActivePort"
        port, path = _wait_for(lambda: active.exists() and active.read_text().split())
        tools = _DevTools(f"ws://127.0.0.1:{port}{path}")
        yield tools
        tools.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_clicking_decisions_and_download_saves_the_csv(tmp_path, page, browser):
    """As a reviewer would: mouse clicks on the radio buttons, a typed note, a click on the download
    button; the file Chromium saves is what `review apply` reads."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    target = browser.call("Target.createTarget", url=page.as_uri())["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(expression: str):
        answer = browser.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in answer, answer
        return answer["result"].get("value")

    # The new target starts on about:blank; wait until the review page has loaded and its script ran.
    _wait_for(lambda: evaluate("document.readyState === 'complete' && !!document.getElementById('csv')"
                               " && document.getElementById('csv').textContent !== ''"))

    def click(selector: str) -> None:
        evaluate(f"document.querySelector({selector!r}).scrollIntoView({{block: 'center'}})")
        box = evaluate(f"(r => [r.x + r.width / 2, r.y + r.height / 2])"
                       f"(document.querySelector({selector!r}).getBoundingClientRect())")
        for kind in ("mousePressed", "mouseReleased"):
            browser.call("Input.dispatchMouseEvent", session, type=kind, x=box[0], y=box[1], button="left",
                         clickCount=1)

    click('figure[data-id="2"] input[value="accept"]')
    click('figure[data-id="1"] input[value="reject_human"]')
    click('figure[data-id="1"] input.note')
    browser.call("Input.insertText", session, text="reflection, in a window")
    assert evaluate("document.getElementById('progress').textContent") == "2 of 3 decided"
    click("#download")
    saved = _wait_for(lambda: [p for p in downloads.iterdir() if p.name == "decisions.csv"])[0]
    assert saved.read_bytes() == csv_bytes(COLUMNS, [
        ("2", "accept", "", SEEN["2"]), ("1", "reject_human", "reflection, in a window", SEEN["1"]),
        (HOSTILE, "", "", SEEN[HOSTILE])])
    assert apply_decisions(str(saved), str(tmp_path / "store.csv")) == (2, 2)
