"""Which plotting library for the report pages: page size and render time, measured.

The same figures of a synthetic two-view, three-method report (four confusion matrices, two view
agreement matrices, per-class F1 and class distribution bars per view, a 4-pair x 512-dimension
cross-ratio strip) are drawn by

- matplotlib, as inline SVG (what pairclass.report uses);
- Altair, one page with Vega-Lite's JavaScript bundle inlined (``chart.to_html(inline=True)``);
- Altair, turned into SVG in Python by vl-convert (no script in the page).

For each: the page's size, the seconds Python takes to make it, the seconds headless Chromium takes
to load and screenshot it, and whether the page holds script or an external-URL string. Then the
full classify page (``write_classify_report``, examples with images included) at the same sizes.

    pip install altair~=6.3.0 vl-convert-python~=1.9.0   # for the Altair rows only
    python scripts/bench_report.py [--classes 13 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from report_data import synthetic_classify_report  # noqa: E402

from pairclass.report import write_classify_report  # noqa: E402
from pairclass.report.browser import screenshot  # noqa: E402
from pairclass.report.figures import ANNOTATE_MAX, bars_svg, dims_svg, heatmap_svg  # noqa: E402

PAGE = "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{}</body></html>"


def figure_inputs(report):
    """The figures every library draws: ``("matrix" | "bars" | "strip", payload)``."""
    methods = [report.default_method, "baseline"]
    out = []
    for m in methods:
        for v in report.views:
            rows = [*report.classes, "(other)"]
            out.append(("matrix", (report.label_confusion[(m, v)], rows, report.classes)))
    for m in methods:
        out.append(("matrix", (report.view_agreement[m], report.classes, report.classes)))
    for v in report.views:
        out.append(("bars", {k.split("/")[0]: np.array([r["f1"][k] for r in report.per_class])
                             for k in report.per_class[0]["f1"] if k.endswith("/" + v)}))
        out.append(("bars", {"labels": report.label_counts,
                             **{m: report.predicted_counts[(m, v)] for m in methods}}))
    out.append(("strip", report.pair_dims))
    return out


def matplotlib_page(report):
    parts = []
    for i, (kind, payload) in enumerate(figure_inputs(report)):
        if kind == "matrix":
            counts, rows, cols = payload
            parts.append(heatmap_svg(counts, rows, cols, row_title="rows", col_title="cols", salt=f"f{i}"))
        elif kind == "bars":
            parts.append(bars_svg(report.classes, payload, xlabel="value", salt=f"f{i}"))
        else:
            parts.append(dims_svg(payload, salt=f"f{i}"))
    return PAGE.format("".join(parts))


def altair_chart(report):
    import altair as alt
    import pandas as pd

    alt.data_transformers.disable_max_rows()
    charts = []
    for kind, payload in figure_inputs(report):
        if kind == "matrix":
            counts, rows, cols = payload
            i, j = np.indices(counts.shape)
            totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
            df = pd.DataFrame({"row": np.asarray(rows)[i.ravel()], "col": np.asarray(cols)[j.ravel()],
                               "n": counts.ravel(), "share": (counts / totals).ravel()})
            base = alt.Chart(df).encode(x=alt.X("col:N", sort=list(cols)), y=alt.Y("row:N", sort=list(rows)))
            chart = base.mark_rect().encode(color=alt.Color("share:Q", scale=alt.Scale(scheme="blues")))
            if len(cols) <= ANNOTATE_MAX:
                chart = chart + base.mark_text(fontSize=7).encode(text="n:Q")
            charts.append(chart)
        elif kind == "bars":
            df = pd.DataFrame([{"class": c, "series": s, "value": float(v[k])}
                               for s, v in payload.items() for k, c in enumerate(report.classes)])
            charts.append(alt.Chart(df).mark_bar().encode(y="class:N", yOffset="series:N", x="value:Q",
                                                          color="series:N"))
        else:
            df = pd.DataFrame([{"pair": f"{p['a']} vs {p['b']}", "dim": d, "ratio": float(r),
                                "kept": d in set(p["dims"])}
                               for p in payload for d, r in enumerate(p["ratio"])])
            charts.append(alt.Chart(df).mark_rect().encode(x="dim:O", y="pair:N", color="ratio:Q",
                                                           opacity=alt.condition("datum.kept", alt.value(1),
                                                                                 alt.value(0.2))))
    return alt.vconcat(*charts)


def altair_inline_page(report):
    return altair_chart(report).to_html(inline=True)


def altair_svg_page(report):
    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(altair_chart(report).to_dict())
    return PAGE.format(svg[svg.index("<svg"):])


def timed(make, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = make()
        best = min(best, time.perf_counter() - start)
    return out, best


def browser_seconds(page, folder):
    """Load and screenshot, with the same virtual-time budget for every page so scripts can draw."""
    start = time.perf_counter()
    screenshot(page, Path(folder) / "shot.png", width=1280, height=2400, script_ms=5000)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[13, 50])
    parser.add_argument("--repeat", type=int, default=3, help="Python timings: best of this many runs")
    args = parser.parse_args()
    libraries = {"matplotlib svg": matplotlib_page}
    try:
        import altair  # noqa: F401
        import vl_convert  # noqa: F401

        libraries |= {"altair + inline vega js": altair_inline_page,
                      "altair -> vl-convert svg": altair_svg_page}
    except ImportError as e:
        print(f"({e.name} is not installed: no Altair rows)", file=sys.stderr)
    print(f"{'page':<34} {'classes':>7} {'page KB':>8} {'render s':>9} {'chromium s':>10}  script  http")
    with tempfile.TemporaryDirectory() as tmp:
        for n_classes in args.classes:
            images = Path(tmp) / f"images{n_classes}"
            report = synthetic_classify_report(n_classes, n_examples=600, image_root=images)
            rows = []
            for i, (name, make) in enumerate(libraries.items()):
                html, seconds = timed(lambda make=make: make(report), args.repeat)
                page = Path(tmp) / f"page{n_classes}-{i}.html"
                page.write_text(html, encoding="utf-8")
                rows.append((f"figures: {name}", page, seconds, html))
            full = Path(tmp) / f"report{n_classes}.html"
            _, seconds = timed(lambda: write_classify_report(report, full), args.repeat)
            rows.append(("full page: write_classify_report", full, seconds, full.read_text(encoding="utf-8")))
            for name, page, seconds, html in rows:
                has_script = "<script" in html
                has_http = bool(re.search(r"https?://", re.sub(r"data:[^\"']+", "", html)))
                print(f"{name:<34} {n_classes:>7} {page.stat().st_size / 1024:>8.0f} {seconds:>9.2f} "
                      f"{browser_seconds(page, tmp):>10.2f}  {'yes' if has_script else 'no':<6}  "
                      f"{'yes' if has_http else 'no'}")


if __name__ == "__main__":
    main()
