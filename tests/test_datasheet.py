"""The datasheet from a release's own files: headings, numbers, plots that are valid PNGs and the
same bytes on every run, and a contact sheet of a stable sample."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from html.parser import HTMLParser

from PIL import Image

from pipeline.io.formats import write_parquet, write_rejections
from pipeline.io.report import build_stats
from pipeline.records import Rejection
from pipeline.release.datasheet import PLOTS, write_datasheet
from tests.conftest import photo, real_jpeg


def small_release(folder, **fields):
    names = ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    photos = [photo(str(i), owner_nsid=f"o{i % 2}", image=real_jpeg(name), width=512, height=341,
                    scores=(("centerface.face", 0.05 * i),), license_name="CC BY 2.0",
                    license_url="https://creativecommons.org/licenses/by/2.0/", **fields)
              for i, name in enumerate(names)]
    for sub in ("parquet", "rejections"):
        (folder / sub).mkdir(parents=True)
    with (folder / "parquet" / "pass-00000-of-00001.parquet").open("wb") as handle:
        write_parquet(handle, photos)
    with (folder / "rejections" / "rejections-00000-of-00001.parquet").open("wb") as handle:
        write_rejections(handle, [Rejection("9", "detect", "human", "centerface.face 0.9 >= 0.5")])
    (folder / "stats.json").write_text(json.dumps(build_stats(4, 3, [(("detect", "human"), 1)])))
    (folder / "manifest.json").write_text(json.dumps({
        "name": "pass-pipeline dataset", "options": {"source": "yfcc", "input": "x.tsv", "max_side": 512,
                                                    "near_dup_distance": 4, "per_owner_cap": 80},
        "models": [{"name": "centerface", "sha256": "0" * 64, "license": "MIT", "thresholds": {"face": 0.5},
                    "review_band": {"face": 0.3}}], "files": []}))


def test_datasheet_describes_the_release(tmp_path):
    small_release(tmp_path)
    entries = write_datasheet(str(tmp_path), None, "2026-11")
    assert {e["path"] for e in entries} == {"DATASHEET.md", "datasheet.html", "datasheet/sample.jpg",
                                            *(f"datasheet/{name}.png" for name in PLOTS)}
    text = (tmp_path / "DATASHEET.md").read_text()
    assert text.startswith("# Datasheet: pass-pipeline dataset 2026-11")
    for heading in ("Motivation", "Composition", "Collection process", "Preprocessing", "Uses", "Distribution",
                    "Maintenance"):
        assert f"## {heading}" in text
    assert "3 images from 2 photographers" in text and "| detect | human | 1 |" in text
    assert "Takedown requests" in text and "centerface" in text
    for name in PLOTS:
        assert Image.open(tmp_path / "datasheet" / f"{name}.png").format == "PNG"
    sample = Image.open(io.BytesIO((tmp_path / "datasheet" / "sample.jpg").read_bytes()))
    assert sample.size == (8 * 128, 128 + 14)  # three images fit in one row of eight, each with its id below
    html = (tmp_path / "datasheet.html").read_text()
    assert all(f"datasheet/{name}.png" in html for name in PLOTS)


def test_same_release_same_datasheet_bytes(tmp_path):
    small_release(tmp_path)
    first = {e["path"]: e["sha256"] for e in write_datasheet(str(tmp_path), None, "r")}
    second = {e["path"]: e["sha256"] for e in write_datasheet(str(tmp_path), None, "r")}
    assert first == second


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[tuple[str, str]] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [(name, value or "") for name, value in attrs if name in ("href", "src")]

    def handle_data(self, data):
        self.text += data


def test_datasheet_html_escapes_names_and_links_only_its_own_images(tmp_path):
    """The release and dataset names reach the page's title; they are text, never markup, the only
    images on the page are the datasheet's own and every link goes to an http(s) URL."""
    small_release(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["name"] = '<a href="javascript:alert(1)">x</a>'
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    write_datasheet(str(tmp_path), None, "</title><script>alert(1)</script><img src=x onerror=alert(1)>")
    page = _Page()
    page.feed((tmp_path / "datasheet.html").read_text())
    page.close()
    own = {f"datasheet/{name}.png" for name in PLOTS} | {"datasheet/sample.jpg"}
    assert {url for name, url in page.urls if name == "src"} == own and page.tags.count("img") == len(own)
    assert all(url.startswith("https://") for name, url in page.urls if name == "href")
    assert "script" not in page.tags
    assert "<script>alert(1)</script>" in page.text and 'href="javascript:alert(1)"' in page.text


def _sections(html_text: str) -> dict[str, str]:
    """{h2 heading: the HTML up to the next h2}."""
    parts = re.split(r'<h2 id="[a-z0-9-]+">(.*?)</h2>', html_text)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_datasheet_html_is_the_whole_datasheet_with_its_plots_in_place(tmp_path):
    small_release(tmp_path, title="<script>alert('t')</script>", owner_name='Eve <img src=x onerror="alert(1)">',
                  page_url="javascript:alert(2)")
    write_datasheet(str(tmp_path), None, "2026-11")
    markdown = (tmp_path / "DATASHEET.md").read_text()
    page = (tmp_path / "datasheet.html").read_text()
    headings = [line.removeprefix("## ") for line in markdown.splitlines() if line.startswith("## ")]
    sections = _sections(page)
    assert list(sections) == headings and {"Motivation", "Composition", "Maintenance"} <= set(headings)
    assert "3 images from 2 photographers" in page and "<td>detect</td><td>human</td><td>1</td>" in page
    assert "Takedown requests" in page and "centerface" in page
    for plot, section in (("licenses", "Composition"), ("owners", "Composition"), ("funnel", "Collection process"),
                          ("rejections", "Collection process"), ("scores", "Preprocessing")):
        assert f'<img src="datasheet/{plot}.png"' in sections[section], plot
    assert '<img src="datasheet/sample.jpg"' in page
    # the sample is attributed with the data's own words, every one escaped, links only http(s)
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in page and "<script" not in page
    assert "Eve &lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and "javascript:alert(2)" not in page.replace(
        "(javascript:alert(2))", "")  # shown as text only, never as a link
    assert 'href="javascript' not in page
    assert '<a href="https://creativecommons.org/licenses/by/2.0/">CC BY 2.0</a>' in page


def test_score_histogram_reads_the_scores_column(tmp_path):
    from pipeline.release.datasheet import COLUMNS, load_rows, score_series

    small_release(tmp_path)
    assert score_series(load_rows(str(tmp_path), COLUMNS)) == {"centerface.face": [0.0, 0.05, 0.1]}


def test_owner_histogram_bins_never_split_a_count():
    from pipeline.release.datasheet import owner_bins

    assert owner_bins([1, 1, 2, 3]) == [-0.5, 0.5, 1.5, 2.5, 3.5]
    wide = owner_bins(list(range(1, 200)))
    assert len(wide) - 1 <= 40 and all(edge % 1 == 0.5 for edge in wide) and wide[-1] >= 199
    assert len({b - a for a, b in __import__("itertools").pairwise(wide)}) == 1  # every bin equally wide


def test_the_datasheet_names_input_files_not_the_builders_folders(tmp_path):
    from pipeline.release.datasheet import _markdown

    manifest = {"options": {"input": "/home/someone/private/yfcc-*.bz2,/data/x/extra.tsv", "source": "yfcc"}}
    text = _markdown(manifest, {"kept": 0}, [], __import__("collections").Counter(), None, "r")
    assert "`yfcc-*.bz2, extra.tsv`" in text and "/home/someone" not in text and "/data/x" not in text


def test_the_datasheet_states_every_held_out_measurement_of_the_fusion_model():
    from pipeline.detectors.fusion import builtin_fusion, heldout_figures
    from pipeline.release.datasheet import _heldout

    text = _heldout({"name": "fusion", "heldout": heldout_figures(builtin_fusion())})
    # Today's model was fitted on the seven earlier splits: heldout8 is its held-out measurement.
    assert (r"216 held-out labelled photographs (heldout8, 2026-12-02, images stored by "
            r"--resize\_reducing\_gap=1.0") in text
    assert "65/70" in text and "107/138" in text and "storage rule 3" in text
    assert r"(heldout8, 2026-12-05, images stored by --resize\_reducing\_gap=1.0, storage rule 11," in text
    assert "(heldout7, " not in text and "(heldout, " not in text
    from pipeline.detectors.fusion import read_fusion
    from pipeline.detectors.registry import BUILTIN_REGISTRY

    until_heldout8 = read_fusion(str(BUILTIN_REGISTRY.parent / "fusion_v4.json"))  # fitted on the four earlier splits
    text = _heldout({"name": "fusion", "heldout": heldout_figures(until_heldout8)})
    assert (r"130 held-out labelled photographs (heldout5, 2026-12-01, images stored by "
            r"--resize\_reducing\_gap=1.0") in text
    assert "41/47" in text and "69/83" in text
    assert "89 held-out labelled photographs (heldout6, 2026-12-01" in text and "22/24" in text and "57/64" in text
    assert "555 held-out labelled photographs (heldout7, 2026-12-01" in text and "207/233" in text and "244/306" in text
    assert "216 held-out labelled photographs (heldout8, 2026-12-02" in text and "63/70" in text and "103/138" in text
    assert "storage rule 2" in text
    assert "(heldout4, " not in text and "(heldout, " not in text

    before = read_fusion(str(BUILTIN_REGISTRY.parent / "fusion_v3.json"))  # the default until heldout5
    text = _heldout({"name": "fusion", "heldout": heldout_figures(before)})
    assert "133 held-out labelled photographs (heldout4, 2026-11-30, images stored by a Lanczos resize" in text
    assert "35/40" in text and "63/84" in text and "62/84" in text
    assert r"(heldout4, 2026-12-01, images stored by --resize\_reducing\_gap=1.0" in text  # Markdown-escaped
    assert "41/47" in text and "67/83" in text  # and heldout5

    earlier = read_fusion(str(BUILTIN_REGISTRY.parent / "fusion_v2.json"))
    text = _heldout({"name": "fusion", "heldout": heldout_figures(earlier)})
    assert "112 held-out labelled photographs (heldout, 2026-11-30)" in text and "32/32" in text
    assert "246 held-out labelled photographs (heldout2, 2026-11-30)" in text and "82/89" in text and "115/152" in text
    assert _heldout({"name": "fusion"}) == "; not measured on held-out photographs"


def test_only_a_page_on_flickr_is_called_a_flickr_page():
    """A table source's page URL may be any http(s) address: it was linked as "Flickr page" all the same."""
    from pipeline.release.datasheet import attribution_line

    row = {"photo_id": "7", "title": "t", "owner_name": "o", "license_name": "CC BY 2.0",
           "license_url": "https://creativecommons.org/licenses/by/2.0/"}
    assert attribution_line({**row, "page_url": "https://www.flickr.com/photos/o/7/"}).endswith(
        "[Flickr page](https://www.flickr.com/photos/o/7/)")
    for url in ("https://images.example.org/7", "https://www.flickr.com.evil.example/7"):
        assert attribution_line({**row, "page_url": url}).endswith(f"[page]({url})")


def test_an_owner_name_that_shows_nothing_is_credited_by_the_owners_id():
    from pipeline.release.datasheet import attribution_line

    row = {"photo_id": "7", "title": "t", "owner_name": "\u200b\u200b", "owner_nsid": "12345@N01",
           "license_name": "CC BY 2.0", "license_url": "https://creativecommons.org/licenses/by/2.0/",
           "page_url": "https://www.flickr.com/photos/o/7/"}
    assert " by 12345@N01, " in attribution_line(row)


def test_a_table_row_naming_no_one_is_credited_by_the_account_its_flickr_page_names():
    """A table's row (no owner id) whose name shows nothing was "by unknown creator" in the datasheet, though its
    Flickr page names the account ATTRIBUTION.csv credits and links; a page a browser opens elsewhere names none."""
    from pipeline.release.datasheet import attribution_line

    row = {"photo_id": "7", "title": "t", "owner_name": "", "owner_nsid": "", "license_name": "CC BY 2.0",
           "license_url": "https://creativecommons.org/licenses/by/2.0/"}
    assert " by 12345@N01, " in attribution_line({**row, "page_url": "https://www.flickr.com/photos/12345@N01/7/"})
    assert " by unknown creator, " in attribution_line(
        {**row, "page_url": "https://evil.example\\@www.flickr.com/photos/12345@N01/7/"})


def test_the_datasheet_holds_a_batch_of_rows_at_a_time_not_the_release(tmp_path):
    """Every kept row was loaded as a dict for the plots, and again with the sample's columns to find the 24 sampled:
    a release of 1.44 million photos took ~3.6 GB in the process publishing a refresh. Its figures are gathered a
    batch of rows at a time, and only the sampled rows are read whole."""
    from tests.conftest import traced_peak

    small_release(tmp_path / "first")
    write_datasheet(str(tmp_path / "first"), None, "r")  # what any datasheet loads once (matplotlib, its fonts)
    small_release(tmp_path)  # its manifest, stats and rejections; its rows replaced by many
    image = io.BytesIO()
    Image.new("RGB", (8, 6), (120, 130, 140)).save(image, "JPEG")
    shards, per_shard = 8, 5000
    (tmp_path / "parquet" / "pass-00000-of-00001.parquet").unlink()
    for shard in range(shards):
        photos = [photo(str(10_000_000 + shard * per_shard + i), owner_nsid=f"{i % 40}@N00", image=image.getvalue(),
                        width=640, height=480 + i % 7, scores=(("centerface.face", i / per_shard),),
                        title=f"a photo {i}")
                  for i in range(per_shard)]
        with (tmp_path / "parquet" / f"pass-{shard:05d}-of-{shards:05d}.parquet").open("wb") as handle:
            write_parquet(handle, photos)
    stats = json.loads((tmp_path / "stats.json").read_text())
    (tmp_path / "stats.json").write_text(json.dumps({key: value for key, value in stats.items() if key != "kept"}))
    _, peak = traced_peak(lambda: write_datasheet(str(tmp_path), None, "r"))
    assert "40,000 images from 40 photographers" in (tmp_path / "DATASHEET.md").read_text()
    assert peak < 16 << 20, f"{peak:,} bytes at the peak for {shards * per_shard:,} rows"


def test_photographers_are_counted_by_account_however_spelt_and_rows_naming_none_are_no_photographer():
    """The datasheet's tally read owner ids as written: a carried row's `007@n01` and `7@N01` were two photographers,
    and every row naming no account (a table's rows) was one more, "" (a release of table rows: "from 1
    photographers")."""
    from pipeline.release.datasheet import Figures, _markdown

    rows = [{"photo_id": str(i), "owner_nsid": owner, "license_name": "CC BY 2.0", "width": 640, "height": 480,
             "scores": []} for i, owner in enumerate(["7@N01", "007@n01", "8@N00", "", ""])]
    figures = Figures.of([rows[:2], rows[2:]])
    assert figures.per_owner == {"7@N01": 2, "8@N00": 1} and figures.no_owner == 2
    text = _markdown({"name": "d"}, {"kept": 5}, figures, Counter(), None, "r")
    assert "5 images from 2 photographers (and 2 images naming no Flickr account)" in text


def test_a_tables_rows_are_counted_by_the_account_their_flickr_pages_name(tmp_path):
    """A table's rows carry no owner id, only their Flickr page: the datasheet counted all of them as images naming no
    Flickr account, where the owner cap held each account the pages name to its quota. They are counted by that
    account, as the cap counts them; a page naming an alias (only the API knows whose) or none names no account."""
    small_release(tmp_path)
    pages = ["https://www.flickr.com/photos/7@N01/1/", "https://flickr.com/photos/007%40n01/2/",
             "http://www.flickr.com/photos/8@N00/3/", "https://www.flickr.com/photos/some_alias/4/",
             "https://images.example.org/5.jpg", ""]
    photos = [photo(str(i), owner_nsid="", owner_name="a credit", page_url=page, image=real_jpeg("coffee.jpg"),
                    width=512, height=341, license_name="CC BY 2.0") for i, page in enumerate(pages, 1)]
    with (tmp_path / "parquet" / "pass-00000-of-00001.parquet").open("wb") as handle:
        write_parquet(handle, photos)
    write_datasheet(str(tmp_path), None, "r")
    assert "images from 2 photographers (and 3 images naming no Flickr account)" in (
        tmp_path / "DATASHEET.md").read_text()


def test_a_tables_rows_are_counted_by_the_account_id_their_owner_column_credits(tmp_path):
    """A table made from Flickr's search answers credits each photo's account by its id in its `owner` column, and
    gives no page: the datasheet counted its rows as images naming no Flickr account, where takedowns by owner (and
    now the owner cap) take that id for the row's account. A row is counted by the account id its owner column
    credits where it has no owner id and its page names none; a creator's name that is no account id names none, and a
    row's owner id comes first (a dump's owner name is a screen name)."""
    small_release(tmp_path)
    credits = [("", "7@N01", ""), ("", "007@n01", ""), ("", " 8@N00 ", ""), ("", "Jane Doe", ""), ("", "", ""),
               ("", "7@N01", "https://www.flickr.com/photos/9@N01/6/"), ("5@N01", "8@N00", "")]
    photos = [photo(str(i), owner_nsid=nsid, owner_name=credited, page_url=page, image=real_jpeg("coffee.jpg"),
                    width=512, height=341, license_name="CC BY 2.0")
              for i, (nsid, credited, page) in enumerate(credits, 1)]
    with (tmp_path / "parquet" / "pass-00000-of-00001.parquet").open("wb") as handle:
        write_parquet(handle, photos)
    write_datasheet(str(tmp_path), None, "r")
    assert "images from 4 photographers (and 2 images naming no Flickr account)" in (
        tmp_path / "DATASHEET.md").read_text()
