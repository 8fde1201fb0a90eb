"""The HTML reports: rendered in a real headless Chromium, checked in its DOM and its screenshot."""

import json
import os
import re
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from report_data import (
    DEMO_VIEWS,
    LABEL_COL,
    demo_audit_report,
    demo_classify_report,
    synthetic_classify_report,
    write_images,
)

from pairclass.report import write_audit_report, write_classify_report
from pairclass.report.browser import chromium_path, dump_dom, screenshot
from pairclass.report.classify_page import MAX_EXAMPLE_CLASSES

CLASSIFY_SECTIONS = {"summary", "confusion", "agreement", "per-class-f1", "distribution", "examples", "pairs"}
AUDIT_SECTIONS = {"summary", "suspects", "noise", "corrections"}
URL_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "poster", "data", "formaction"}


class Page(HTMLParser):
    """What the tests read off a page: element ids, tags, URL-bearing attributes and the count tables."""

    def __init__(self, html):
        super().__init__()
        self.ids, self.tags, self.urls, self.tables, self.styles = set(), [], [], [], []
        self._table = self._row = self._cell = None
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        self.urls += [v for k, v in attrs.items() if k in URL_ATTRS and v is not None]
        if "style" in attrs:
            self.styles.append(attrs["style"])
        self._in_style = tag == "style"
        if tag == "table" and "data-kind" in attrs:
            self._table = {"attrs": attrs, "rows": []}
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(int(self._cell.strip() or 0))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self.tables.append({**self._table, "counts": np.array(self._table["rows"])})
            self._table = None
        elif tag == "style":
            self._in_style = False

    def table(self, **attrs):
        """The one count table whose data-* attributes are ``attrs``."""
        found = [t for t in self.tables if all(t["attrs"].get(f"data-{k}") == v for k, v in attrs.items())]
        assert len(found) == 1, (attrs, [t["attrs"] for t in self.tables])
        return found[0]["counts"]


def assert_offline(html):
    page = Page(html)
    for url in page.urls:
        assert url.startswith(("#", "data:")), url
    for style in page.styles:
        assert "@import" not in style
        assert all(u.startswith(("#", "data:")) for u in re.findall(r"url\(\s*['\"]?([^'\")]*)", style)), style
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert not re.search(r"https?:|//[a-z]", re.sub(r"data:[^\"']+", "", html), re.IGNORECASE)


def assert_not_blank(png, min_share=0.03):
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    background = pixels[0, -1]
    inked = np.abs(pixels - background).sum(axis=2) > 30
    assert inked.mean() > min_share, f"only {inked.mean():.1%} of the screenshot differs from the background"


@pytest.fixture(scope="module")
def chromium():
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed: apt-get install -y chromium (.ci/run does)")


@pytest.fixture(scope="module")
def classify_demo(tmp_path_factory):
    report = demo_classify_report()
    path = tmp_path_factory.mktemp("classify") / "report.html"
    write_classify_report(report, path)
    return report, path


@pytest.fixture(scope="module")
def audit_demo(tmp_path_factory):
    report = demo_audit_report()
    path = tmp_path_factory.mktemp("audit") / "report.html"
    write_audit_report(report, path)
    return report, path


@pytest.fixture(scope="module")
def classify_dom(chromium, classify_demo):
    return Page(dump_dom(classify_demo[1]))


@pytest.fixture(scope="module")
def audit_dom(chromium, audit_demo):
    return Page(dump_dom(audit_demo[1]))


def test_classify_page_paints_in_chromium(chromium, classify_demo, tmp_path):
    assert_not_blank(screenshot(classify_demo[1], tmp_path / "page.png", width=1280, height=1600))


def test_audit_page_paints_in_chromium(chromium, audit_demo, tmp_path):
    assert_not_blank(screenshot(audit_demo[1], tmp_path / "page.png", width=1280, height=1600))


def test_blank_page_fails_the_screenshot_check(chromium, tmp_path):
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    with pytest.raises(AssertionError, match="differs from the background"):
        assert_not_blank(screenshot(page, tmp_path / "blank.png", width=800, height=600))


def test_classify_dom_has_every_section(classify_dom):
    assert CLASSIFY_SECTIONS <= classify_dom.ids
    assert classify_dom.tags.count("svg") >= 4 + 2 + 2 + 2 + 1


def test_confusion_tables_sum_to_the_labelled_items(classify_demo, classify_dom):
    report, _ = classify_demo
    n_labelled = sum(label is not None for label in report.examples[LABEL_COL].to_pylist())
    for method in ("pairwise", "baseline"):
        for view in report.views:
            counts = classify_dom.table(kind="confusion", method=method, view=view)
            assert counts.sum() == n_labelled == 1050
            np.testing.assert_array_equal(counts, report.label_confusion[(method, view)])
            np.testing.assert_array_equal(counts.sum(axis=1)[:-1], report.label_counts)


def test_agreement_tables_hold_every_item(classify_demo, classify_dom):
    report, _ = classify_demo
    for method in ("pairwise", "baseline"):
        counts = classify_dom.table(kind="agreement", method=method)
        np.testing.assert_array_equal(counts, report.view_agreement[method])
        assert counts.sum() == report.n_items


def test_audit_dom_has_sections_suspects_and_corrections(audit_demo, audit_dom):
    report, _ = audit_demo
    assert AUDIT_SECTIONS <= audit_dom.ids
    corrections = audit_dom.table(kind="corrections")
    np.testing.assert_array_equal(corrections, report.corrections)
    assert corrections.sum() == report.n_flagged


def test_pages_have_no_external_urls(classify_demo, audit_demo):
    for _, path in (classify_demo, audit_demo):
        assert_offline(path.read_text(encoding="utf-8"))


def test_offline_check_catches_an_external_url():
    with pytest.raises(AssertionError):
        assert_offline('<html><body><img src="//cdn.example/x.png"></body></html>')
    with pytest.raises(AssertionError):
        assert_offline('<html><head><style>@import url("x.css");</style></head></html>')


def test_audit_page_lists_the_suspects_in_rank_order(audit_demo):
    report, path = audit_demo
    html = path.read_text(encoding="utf-8")
    ids = report.suspects[report.id_col].to_pylist()
    positions = [html.index(f'<div class="id">{i}</div>') for i in ids]
    assert positions == sorted(positions) and len(ids) == report.n_flagged


@pytest.mark.parametrize("variant", ["no labels", "one view", "one view, no labels"])
def test_variants_render_without_the_missing_sections(variant, tmp_path):
    report = demo_classify_report(views=DEMO_VIEWS[:1] if "one view" in variant else DEMO_VIEWS,
                                  labels="no labels" not in variant)
    path = write_classify_report(report, tmp_path / "report.html")
    page = Page(path.read_text(encoding="utf-8"))
    assert {"summary", "distribution", "examples", "pairs"} <= page.ids
    assert ("confusion" in page.ids) == ("no labels" not in variant)
    assert ("per-class-f1" in page.ids) == ("no labels" not in variant)
    assert ("agreement" in page.ids) == ("one view" not in variant)
    assert_offline(path.read_text(encoding="utf-8"))


def test_joint_default_method_groups_examples_by_its_one_prediction(tmp_path):
    report = demo_classify_report()
    n = report.examples.num_rows
    joint = report.examples[f"{report.views[0]}__pairwise__pred"]
    confidence = [None if i % 5 == 0 else float(i) for i in range(n)]
    report.examples = (report.examples.append_column("joint__pred", joint)
                       .append_column("joint__confidence", pa.array(confidence, pa.float64())))
    report.methods["joint"] = {"agreement_f1": None}
    report.default_method = "joint"
    html = write_classify_report(report, tmp_path / "report.html").read_text(encoding="utf-8")
    cards = html.split('<div class="card">')[1:]
    assert len(cards) == 7 * 6
    assert all(card.count("<div>joint: ") == 1 and "<div>product_name: " not in card for card in cards)
    # The most confident card of a class is its highest non-missing confidence.
    top = max((c for c, p in zip(confidence, joint.to_pylist()) if p == report.classes[0] and c is not None))
    assert f"({top:.3f})" in cards[0]


def test_user_text_is_escaped(tmp_path):
    report = demo_classify_report()
    evil = "<script>alert(1)</script>"
    report.classes = [evil, *report.classes[1:]]
    report.source = '"><img src=x onerror=alert(1)>'
    report.warnings = ["<b>bold</b> & $x^2$ money"]
    names = report.examples.column_names
    col = f"{report.views[0]}__pairwise__pred"
    preds = [evil if p == "Baby Care" else p for p in report.examples[col].to_pylist()]
    report.examples = report.examples.set_column(names.index(col), col, pa.array(preds))
    html = write_classify_report(report, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; $x^2$ money" in html


def test_thumbnails_embed_good_images_and_skip_bad_ones(tmp_path, monkeypatch):
    images = tmp_path / "images"
    write_images(images, 3, size=(300, 200))
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (1200, 1200), "white").save(images / "huge.png")
    # 1.44 MP is over this MAX_IMAGE_PIXELS but under twice it, where Pillow only warns: refuse it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    report = demo_classify_report()
    sources = ["img0.jpg", "img1.jpg", "img2.jpg", "corrupt.jpg", "huge.png", "missing.jpg", None]
    report.examples = report.examples.append_column(
        "image", pa.array([sources[i % len(sources)] for i in range(report.examples.num_rows)]))
    report.image_col, report.image_root = "image", str(images)
    html = write_classify_report(report, tmp_path / "report.html").read_text(encoding="utf-8")
    thumbs = re.findall(r'<img src="(data:image/jpeg;base64,[^"]+)"', html)
    assert thumbs and len(set(thumbs)) == 3
    assert re.search(r"3 image\(s\) could not be read", html)
    assert html.count('<div class="thumb"></div>') > 0


def test_13_classes_with_images_stay_under_5_mb(tmp_path):
    report = synthetic_classify_report(13, n_examples=300, image_root=tmp_path / "images")
    path = write_classify_report(report, tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    assert html.count("data:image/jpeg;base64,") == 13 * 6
    assert path.stat().st_size < 5_000_000


def test_many_classes_show_examples_for_the_largest_only(tmp_path):
    report = synthetic_classify_report(50, n_examples=400)
    html = write_classify_report(report, tmp_path / "report.html").read_text(encoding="utf-8")
    shown = re.findall(r'class="class-examples" data-class="([^"]+)"', html)
    largest = [report.classes[i] for i in np.argsort(-report.label_counts, kind="stable")[:MAX_EXAMPLE_CLASSES]]
    assert shown == largest
    assert Page(html).table(kind="confusion", method="cotrain", view="clip_text_features").shape == (51, 50)


def test_a_failed_render_leaves_the_old_page(tmp_path):
    path = tmp_path / "report.html"
    path.write_text("old page")
    report = demo_classify_report()
    report.id_col = "no such column"
    with pytest.raises(KeyError):
        write_classify_report(report, path)
    assert path.read_text() == "old page"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_audit_page_renders_images_and_texts(tmp_path):
    report = demo_audit_report()
    names = write_images(tmp_path / "images", 2)
    n = report.suspects.num_rows
    report.suspects = (report.suspects
                       .append_column("title", pa.array([f"title <{i}>" for i in range(n)]))
                       .append_column("image", pa.array([names[i % 2] for i in range(n)])))
    report.text_cols, report.image_col, report.image_root = ["title"], "image", str(tmp_path / "images")
    html = write_audit_report(report, tmp_path / "audit.html").read_text(encoding="utf-8")
    assert html.count("data:image/jpeg;base64,") == n
    assert "title &lt;0&gt;" in html
    assert_offline(html)


def test_classify_report_from_the_cli_counts_every_labelled_item(tmp_path, make_files):
    from typer.testing import CliRunner

    from pairclass.cli import app

    emb, cls = make_files(n_classes=4)
    report = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["classify", str(emb), "--classes", str(cls), "--label-col", "category",
                                      "--min-count", "3", "--pairwise", "--report", str(report), "--json"])
    assert result.exit_code == 0, result.stderr
    html = report.read_text()
    assert_offline(html)
    page = Page(html)
    assert {"summary", "confusion", "agreement", "per-class-f1", "distribution", "examples", "pairs"} <= page.ids
    summary = json.loads(result.stdout)
    for method in ("baseline", "cotrain"):
        counts = page.table(kind="confusion", method=method, view="clip_image_features")
        assert counts.sum() == summary["n_items"]
        # The diagonal is the accuracy the run reported.
        assert np.trace(counts[: counts.shape[1]]) == round(
            summary["methods"][method]["accuracy"]["clip_image_features"] * summary["n_items"])
    agreement = page.table(kind="agreement", method="cotrain")
    assert agreement.sum() == summary["n_items"]
    # Per class, three most and three least confident examples at most: 4 classes, 30 items each.
    assert html.count('class="card"') <= 4 * 6 and html.count('class="card"') >= 4


def test_audit_report_from_the_cli_shows_a_thumbnail_and_title_per_suspect(tmp_path):
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from pairclass.cli import app

    root = os.path.join(os.path.dirname(__file__), "..", "data")
    table = pq.read_table(os.path.join(root, "demo.parquet"))
    n = table.num_rows
    names = write_images(tmp_path / "images", 3)
    labels = np.array(table.column(LABEL_COL).to_pylist(), dtype=object)
    classes = sorted(set(labels))
    flipped = np.random.default_rng(0).choice(n, 30, replace=False)
    labels[flipped] = [classes[(classes.index(c) + 1) % len(classes)] for c in labels[flipped]]
    table = (table.set_column(table.schema.get_field_index(LABEL_COL), LABEL_COL, pa.array(list(labels)))
             .append_column("title", pa.array([f"item <{i}>" for i in range(n)]))
             .append_column("image", pa.array([f"images/{names[i % 3]}" for i in range(n)])))
    emb, report = tmp_path / "emb.parquet", tmp_path / "audit.html"
    pq.write_table(table, emb)
    result = CliRunner().invoke(app, [
        "audit", str(emb), "--classes", os.path.join(root, "demo_classes.parquet"), "--label-col", LABEL_COL,
        "--views", ",".join(DEMO_VIEWS), "--keep-cols", "title", "--image-col", "image", "--report", str(report),
        "--json"])
    assert result.exit_code == 0, result.stderr
    flagged = json.loads(result.stdout)["n_flagged"]
    assert flagged >= 15
    html = report.read_text(encoding="utf-8")
    assert_offline(html)
    # Image paths are relative to the input's folder; every suspect card has its thumbnail and title.
    assert html.count("data:image/jpeg;base64,") == min(flagged, 300)
    assert len(re.findall(r"item &lt;\d+&gt;", html)) == min(flagged, 300)
