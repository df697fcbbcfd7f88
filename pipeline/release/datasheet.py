"""DATASHEET.md and datasheet.html with PNG plots, written into every release, under the headings
of "Datasheets for Datasets" (Gebru et al.): motivation, composition, collection process,
preprocessing, uses, distribution, maintenance, and an attributed sample. The figures come from the
release's own files (stats.json, Parquet metadata, rejections), so the datasheet always describes
what was shipped. datasheet.html is the same Markdown rendered (`markdown_html`), the plots in their
sections; every value from the data goes into the Markdown escaped, so it stays text in both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import posixpath
import re
import string
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from PIL import Image, ImageDraw, ImageFont

from pipeline.io import report
from pipeline.io.files import matching, read_parquet, write_atomically
from pipeline.io.flickr_pages import account, credited_owner
from pipeline.io.formats import image_bytes, scores_from_entries
from pipeline.io.names import creator_name
from pipeline.options import split_list
from pipeline.records import ascii_number
from pipeline.release.markdown_html import escape_markdown, markdown_link, plain_text, render

COLUMNS = ["photo_id", "owner_nsid", "owner_name", "page_url", "license_name", "width", "height", "scores"]
SAMPLE = 24  # images in the contact sheet: the ones with the smallest sha256(photo id), so stable
PLOTS = ("funnel", "rejections", "licenses", "owners", "resolution", "scores")
FIGURE_SIZE = (7.0, 3.6)  # inches, at 100 dpi


def _files(release: str, pattern: str) -> list[str]:
    return matching(FileSystems.join(release, pattern))


# Rows made Python objects at a time. Every row of the release was, for the plots, and again with the sample's columns
# to find the 24 sampled: 1.44 million rows took ~3.6 GB in the process that publishes a refresh.
_BATCH_ROWS = 4096


def _batches(release: str, columns: list[str]) -> Iterator[list[dict[str, Any]]]:
    """The dataset's rows, `columns` of each, a batch of at most `_BATCH_ROWS` at a time, in shard order."""
    for path in _files(release, "parquet/*.parquet"):
        for batch in read_parquet(path, columns).to_batches(_BATCH_ROWS):
            yield batch.to_pylist()


def load_rows(release: str, columns: list[str]) -> list[dict[str, Any]]:
    return [row for batch in _batches(release, columns) for row in batch]


@dataclass
class Figures:
    """What the datasheet shows of the kept images, gathered a batch of rows at a time: ~20 bytes an image (its
    longer side and its scores as machine numbers) beside a count per licence and per photographer, where every
    row was held as a dict."""
    count: int = 0
    licenses: Counter = field(default_factory=Counter)
    per_owner: Counter = field(default_factory=Counter)
    no_owner: int = 0  # images whose row names no account (a table's rows)
    sides: array = field(default_factory=lambda: array("q"))
    scores: dict[str, array] = field(default_factory=dict)
    sample: list[str] = field(default_factory=list)  # the contact sheet's photo ids (`_sample`)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.count += len(rows)
        self.licenses.update(row["license_name"] for row in rows)
        # One account however a row spells it (a carried row of an older release: "007@n01" is 7@N01), a table's row
        # the account its Flickr page names, else the account id its owner column credits, as the owner cap counts
        # them: table rows were all "images naming no Flickr account", a photographer the cap held to its quota among
        # none. A row naming none (no id, a page naming an alias or none, a creator's name) is no photographer: all of
        # those were one, "".
        owners = [account(row["owner_nsid"] or "", row.get("page_url") or "", row.get("owner_name") or "")
                  for row in rows]
        self.per_owner.update(owner for owner in owners if owner)
        self.no_owner += owners.count("")
        self.sides.extend(max(row["width"], row["height"]) for row in rows)
        for name, values in score_series(rows).items():
            self.scores.setdefault(name, array("d")).extend(values)
        # the earlier rows first, so that equal keys keep the rows' order, as sorting all of them did
        self.sample = [row["photo_id"] for row in _sample([{"photo_id": photo_id} for photo_id in self.sample] + rows)]

    @classmethod
    def of(cls, rows: Iterable[list[dict[str, Any]]]) -> Figures:
        """The figures of batches of rows."""
        figures = cls()
        for batch in rows:
            figures.add(batch)
        return figures


def _figure(draw: Any, side_labels: Sequence[str] = ()) -> bytes:
    """One plot as PNG bytes. Margins are set, not measured: `tight_layout` measures every text of the
    figure first and took ~40% of its time (six figures in each refresh). The left margin fits
    the longest of `side_labels` (8-point tick labels, ~0.62 em a character: typical of
    lowercase names; a run of W or M is wider) or else a count of up to six digits (10-point);
    the bottom one an axis label or a "1e7" under the ticks."""
    from matplotlib.figure import Figure  # matplotlib loads lazily: only a refresh draws

    width, height = FIGURE_SIZE
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.subplots()
    draw(ax)
    label_inches = max(len(label) for label in side_labels) * 8 * 0.62 / 72 if side_labels else 6 * 10 * 0.62 / 72
    fig.subplots_adjust(left=min(0.5, (label_inches + 0.3) / width), right=0.97, top=0.91, bottom=0.15)
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})  # no version string: same bytes every run
    return out.getvalue()


def _bar_figure(labels: list[str], values: list[int], title: str) -> bytes:
    """A horizontal bar chart, its left margin fitted to its labels."""
    return _figure(lambda ax: _barh(ax, labels, values, title), labels)


def _barh(ax: Any, labels: list[str], values: list[int], title: str) -> None:
    ax.barh(range(len(values)), values, color="#4c72b0")
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    # Room inside the axes for the longest bar's count, printed after it.
    ax.set_xlim(0, max(values, default=0) * 1.2 or 1)
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:,}", va="center", fontsize=7)


def score_series(rows: list[dict]) -> dict[str, list[float]]:
    """{score name: the values of the kept images}, from the rows' `scores` column."""
    scores: dict[str, list[float]] = {}
    for row in rows:
        for name, value in scores_from_entries(row["scores"]):
            scores.setdefault(name, []).append(value)
    return scores


def plots(stats: dict, figures: Figures, rejections: Counter, thresholds: dict[str, float]) -> dict[str, bytes]:
    import numpy as np  # as matplotlib reads the values: the same numbers the rows gave

    funnel = stats.get("funnel", [])
    licenses, per_owner = figures.licenses, figures.per_owner
    sides = np.frombuffer(figures.sides, dtype=np.int64) if figures.sides else [0]
    scores = {name: np.frombuffer(values, dtype=np.float64) for name, values in figures.scores.items()}
    top_reasons = rejections.most_common(15)

    def score_hist(ax: Any) -> None:
        for name in sorted(scores):
            if name in thresholds:
                ax.hist(scores[name], bins=40, range=(0, 1), alpha=0.5, label=name)
                ax.axvline(thresholds[name], linestyle="--", linewidth=1, color="black")
        ax.set_title("Detector scores of kept images (dashed: rejection thresholds)", fontsize=10)
        ax.set_xlabel("score")
        if scores:
            ax.legend(fontsize=7)

    def owner_hist(ax: Any) -> None:
        from matplotlib.ticker import MaxNLocator  # matplotlib loads lazily: only a refresh draws

        counts = sorted(per_owner.values()) or [0]
        ax.hist(counts, bins=owner_bins(counts), color="#55a868")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"Images per photographer ({len(per_owner):,} photographers)", fontsize=10)
        ax.set_xlabel("images")

    return {
        "funnel": _bar_figure([f["stage"] for f in funnel], [f["out"] for f in funnel],
                              "Images remaining after each stage"),
        "rejections": _bar_figure([f"{s}/{r}" for (s, r), _ in top_reasons], [n for _, n in top_reasons],
                                  "Rejections by stage and reason"),
        "licenses": _bar_figure(sorted(licenses), [licenses[k] for k in sorted(licenses)], "Licenses of kept images"),
        "owners": _figure(owner_hist),
        "resolution": _figure(lambda ax: (ax.hist(sides, bins=30, color="#8172b2"),
                                          ax.set_title("Longer side of stored images (px)", fontsize=10))),
        "scores": _figure(score_hist),
    }


def owner_bins(counts: list[int], most: int = 40) -> list[float]:
    """Histogram edges between whole numbers (images per photographer are counts: no bin may
    split one), at most `most` bins, each the same whole number wide."""
    high = max(counts or [0])
    step = max(1, -(-(high + 1) // most))
    return [edge - 0.5 for edge in range(0, high + step + 1, step)]


CAPTION = 14  # pixels under each thumbnail for its photo id


def _sample(rows: list[dict]) -> list[dict]:
    """The rows shown in the contact sheet: the smallest sha256(photo id), so the same every run."""
    return sorted(rows, key=lambda row: hashlib.sha256(row["photo_id"].encode()).hexdigest())[:SAMPLE]


def _sampled_rows(release: str, columns: list[str], sample: list[str]) -> Iterator[dict[str, Any]]:
    """The rows of the sampled photo ids, in shard order: only theirs made Python objects (a shard's images were
    copied whole into Python's bytes to find the few sampled)."""
    wanted = pa.array(sorted(set(sample)), pa.string())
    for path in _files(release, "parquet/*.parquet"):
        table = read_parquet(path, columns)
        yield from table.filter(pc.is_in(table.column("photo_id"), value_set=wanted)).to_pylist()


def contact_sheet(release: str, sample: list[str], size: int = 128, columns: int = 8) -> bytes:
    """The sampled photos' thumbnails, each with its id below (`sample`: photo ids, `Figures.sample`)."""
    images: dict[str, bytes] = {}
    for row in _sampled_rows(release, ["photo_id", "image"], sample):
        images[row["photo_id"]] = image_bytes(row["image"])
    order = [photo_id for photo_id in sample if photo_id in images]
    rows_needed = max(1, -(-len(order) // columns))
    sheet = Image.new("RGB", (columns * size, rows_needed * (size + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()  # Pillow's built-in bitmap font: the same bytes everywhere
    for index, photo_id in enumerate(order):
        with Image.open(io.BytesIO(images[photo_id])) as img:
            thumb = img.convert("RGB")
            thumb.thumbnail((size, size))
        left, top = (index % columns) * size, (index // columns) * (size + CAPTION)
        sheet.paste(thumb, (left, top))
        draw.text((left + 2, top + size + 1), photo_id, fill="black", font=font)  # which photo to look up
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=85)
    return out.getvalue()


# The datasheet's text, with $placeholders filled from the release's own files.
TEMPLATE = string.Template((Path(__file__).parent / "datasheet.md").read_text(encoding="utf-8"))


def _when(value: object) -> str:
    """An upload bound as given (a day) or as epoch seconds, readable."""
    text = str(value or "")
    if ascii_number(text) is not None:
        return dt.datetime.fromtimestamp(int(text), tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return text or "—"


def _text(value: object) -> str:
    """A value from the release's files (manifest, stats, rows) as Markdown text: never markup."""
    return escape_markdown(str(value))


def _code(value: object) -> str:
    """A value as an inline code span: backticks (which would end it) and line breaks removed, controls and
    bidi formatting as `plain_text` leaves them."""
    return "`" + " ".join(plain_text(str(value)).replace("`", "'").split()) + "`"


# The columns the sample's attribution lines need (read for the sampled rows only).
SAMPLE_COLUMNS = ["photo_id", "owner_nsid", "owner_name", "title", "page_url", "license_name", "license_url"]


def sample_attribution(release: str, sample: list[str]) -> list[dict]:
    """The sampled rows (`sample`: photo ids, `Figures.sample`) with what their attribution needs, in the contact
    sheet's order."""
    wanted = {photo_id: index for index, photo_id in enumerate(sample)}
    found = list(_sampled_rows(release, SAMPLE_COLUMNS, sample))
    return sorted(found, key=lambda row: wanted[row["photo_id"]])


def attribution_line(row: dict) -> str:
    """'- `ID` “title” by creator, [CC BY 2.0](https://…), [Flickr page](https://…)': every value
    escaped; a URL that is not plain http(s) is shown as text, never linked."""
    title = f"“{_text(row['title'])}”" if (row.get("title") or "").strip() else "untitled"
    name = row.get("owner_name") or ""
    owner = credited_owner(row.get("owner_nsid") or "", row.get("page_url") or "", name)  # as ATTRIBUTION.csv's
    creator = _text(creator_name(name, owner) or "unknown creator")
    license_link = markdown_link(_text(row.get("license_name") or "license unknown"), row.get("license_url") or "")
    url = row.get("page_url") or ""
    page = markdown_link("Flickr page" if _FLICKR_PAGE.match(url) else "page", url)
    return f"- {_code(row['photo_id'])} {title} by {creator}, {license_link}, {page}"


# A table source's page URL may be any http(s) address: only one on Flickr's own site is called a Flickr page.
_FLICKR_PAGE = re.compile(r"https?://(www\.)?flickr\.com/", re.IGNORECASE)


def _heldout(model: dict) -> str:
    """What the fusion model was measured to do on held-out photographs, every split it was measured
    on (a later split is fresher evidence), when the manifest says."""
    evaluations = model.get("heldout")
    if not isinstance(evaluations, list) or not evaluations:
        return "; not measured on held-out photographs" if model.get("name") == "fusion" else ""

    def rate(figures: dict, key: str) -> str:
        value = figures.get(key) or {}
        low, high = value.get("ci95", [0, 0])
        return (f"{float(value.get('rate') or 0):.1%} (95% interval {float(low):.1%}–{float(high):.1%}, "
                f"{int(value.get('successes', 0))}/{int(value.get('n', 0))})")

    def stored(figures: dict) -> str:
        return f", images stored by {_text(figures['stored_by'])}" if figures.get("stored_by") else ""

    return "".join(f"; on {int(figures.get('images', 0))} held-out labelled photographs "
                   f"({_text(figures.get('split', ''))}, {_text(figures.get('date', ''))}{stored(figures)}): recall "
                   f"on images with a "
                   f"person {rate(figures, 'recall')}, clean photographs kept {rate(figures, 'keep_rate')}"
                   for figures in evaluations if isinstance(figures, dict))


def _markdown(manifest: dict, stats: dict, figures: Figures | list[dict], rejections: Counter,
              changelog: dict | None, name: str, sample: list[dict] | None = None) -> str:
    """`figures`: the release's, or rows to gather them from."""
    figures = figures if isinstance(figures, Figures) else Figures.of([figures])
    options = manifest.get("options", {})
    models = manifest.get("models", [])
    owners = f"{len(figures.per_owner):,} photographers" + (
        f" (and {figures.no_owner:,} images naming no Flickr account)" if figures.no_owner else "")
    reasons = "\n".join(f"| {_text(stage)} | {_text(reason)} | {count:,} |" for (stage, reason), count in
                        sorted(rejections.items(), key=lambda item: (-item[1], item[0])))
    model_lines = "\n".join(f"- {_code(m['name'])} (sha256 {_code(str(m['sha256'])[:12] + '…')}, "
                            f"{_text(m['license'])}): thresholds {_text(m['thresholds'])}, review band from "
                            f"{_text(m['review_band'])}{_heldout(m)}" for m in models) or "- none"
    # File names only: the builder's own folders say nothing about the data and may say who built it.
    names = ", ".join(posixpath.basename(path.rstrip("/")) for path in split_list(options.get("input")))
    source = (f"input {_code(names)}" if options.get("input") else
              f"uploads from {_text(_when(options.get('min_upload_date')))} to "
              f"{_text(_when(options.get('max_upload_date')))}")
    verified = "re-verified against the live Flickr API, " if options.get("verify_license") else ""
    change = ""
    if changelog:
        removed = ", ".join(f"{_text(reason)}: {len(ids)}" for reason, ids in sorted(changelog["removed"].items()))
        change = (f"\nCompared with the previous release {_code(changelog['previous'])}: "
                  f"{len(changelog['added']):,} added, {changelog['unchanged']:,} unchanged, removed "
                  f"{removed or 'none'} (see CHANGELOG.md).\n")
    sample = sample or []
    return TEMPLATE.substitute(
        dataset=_text(manifest.get("name", "dataset")), release=_text(name),
        kept=f"{stats.get('kept', figures.count):,}", owners=owners,
        max_side=_text(options.get("max_side", "?")), change=change,
        source=_code(options.get("source", "?")), source_detail=source, verified=verified,
        input_rows=f"{stats.get('input_rows', 0):,}", accounted=_text(stats.get("accounted")), reasons=reasons,
        near_dup_distance=_text(options.get("near_dup_distance")), per_owner_cap=_text(options.get("per_owner_cap")),
        model_lines=model_lines, sample_count=len(sample),
        sample_lines="\n".join(attribution_line(row) for row in sample) or "- none")


# The page loads nothing but its own plots and runs nothing, even if markup slipped past the escaping.
_POLICY = "default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_STYLE = ("body{font-family:sans-serif;max-width:860px;margin:auto;padding:0 1em;line-height:1.4}"
          "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:85%;color:#555}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
          "code{background:#f4f4f4}")


def _html(title: str, markdown: str) -> bytes:
    """The whole datasheet as one page: the Markdown rendered, its plots where the text places them."""
    return (f'<!doctype html><html lang=en><meta charset=utf-8>'
            f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>\n{render(markdown)}\n").encode()


def write_datasheet(release: str, changelog: dict | None = None, name: str = "") -> list[dict[str, Any]]:
    """Writes DATASHEET.md, datasheet.html and datasheet/*.png|jpg; returns their manifest entries."""
    manifest, stats = report.read_manifest(release), report.read_stats(release)
    figures = Figures.of(_batches(release, COLUMNS))
    rejections: Counter = Counter()
    for path in _files(release, "rejections/*.parquet"):  # a shard holds up to 500,000 rows
        for batch in read_parquet(path, ["stage", "reason"]).to_batches(_BATCH_ROWS):
            rejections.update(zip(batch.column("stage").to_pylist(), batch.column("reason").to_pylist(),
                                  strict=True))
    thresholds = {f"{m['name']}.{cls}": value for m in manifest.get("models", []) for cls, value in
                  m["thresholds"].items()}
    outputs = {f"datasheet/{name}.png": data for name, data in plots(stats, figures, rejections, thresholds).items()}
    outputs["datasheet/sample.jpg"] = contact_sheet(release, figures.sample)
    release_name = name or manifest.get("release") or ""
    text = _markdown(manifest, stats, figures, rejections, changelog, release_name,
                     sample_attribution(release, figures.sample))
    outputs["DATASHEET.md"] = text.encode("utf-8")
    outputs["datasheet.html"] = _html(f"Datasheet: {manifest.get('name', 'dataset')} {release_name}", text)
    entries = []
    for name, data in sorted(outputs.items()):
        def write(handle: BinaryIO, data: bytes = data) -> int:
            return handle.write(data)

        entry = write_atomically(FileSystems.join(release, name), write)
        entries.append({"path": name, "format": "datasheet", **entry})
    return entries
