"""report.html: one self-contained page (inline CSS, SVG and a few lines of JS; no URL at all).

It opens with no network: no external script, font, stylesheet or image. The markup is
XHTML-compatible (every tag closed, attributes quoted) so a test can parse it as XML. Colours
follow `prefers-color-scheme`; charts draw text in `currentColor`, so both themes read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import polars as pl

from xrdiag.report import run_tables, svg, tables
from xrdiag.report.markdown import (
    cell,
    comparison_summary,
    findings,
    title_of,
    top_changes,
)

if TYPE_CHECKING:
    from xrdiag.report.bundle import Bundle, Source

_SELECTED = ' selected="selected"'
MAX_CURVE_POINTS = 400  # training-curve points drawn per series (the tables keep every step)
MAX_POINTS = 1500  # projection points drawn per scatter (a deterministic stride over the rows)

CSS = """
:root { --bg: #ffffff; --fg: #1d2330; --muted: #5b6475; --card: #f5f7fa; --line: #d8dde6;
  --warn-bg: #fff4d6; --warn-fg: #6b4b00; --accent: #0b63c5; color-scheme: light dark; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #14171c; --fg: #e4e8ef; --muted: #9aa4b5; --card: #1d2129; --line: #343b47;
    --warn-bg: #3b3018; --warn-fg: #f3d58a; --accent: #6cb0ff; }
}
body { background: var(--bg); color: var(--fg); margin: 0 auto; max-width: 1280px;
  padding: 16px 28px 60px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin-top: 34px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; }
.muted { color: var(--muted); } code { font-size: 12px; }
.note { background: var(--warn-bg); color: var(--warn-fg); padding: 6px 10px; border-radius: 6px;
  margin: 6px 0; }
.grid { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px; overflow-x: auto; max-width: 100%; }
svg.chart { display: block; color: var(--fg); }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 2px 6px; text-align: right; }
th { background: var(--card); } td.s, th.s { text-align: left; }
td.sig { font-weight: bold; color: var(--accent); }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
select { font: inherit; color: var(--fg); background: var(--card); border: 1px solid var(--line);
  border-radius: 4px; padding: 1px 4px; }
"""

# Layer selector: show the panel of the chosen layer. Written without "<" or "&" so that the
# page stays well-formed XML; with scripts off every panel stays visible.
JS = """
document.querySelectorAll("select.layer-select").forEach(function (sel) {
  function show() {
    document.querySelectorAll("[data-panel='" + sel.dataset.group + "']").forEach(function (p) {
      p.hidden = p.dataset.layer !== sel.value;
    });
  }
  sel.addEventListener("change", show);
  show();
});
"""


def _e(text: Any) -> str:
    return escape(str(text))


def html_table(frame: pl.DataFrame, digits: int = 3, max_rows: int = 400) -> str:
    """A frame as an HTML table; strings left-aligned, significant=True cells highlighted."""
    head = "".join(
        f'<th class="{"s" if frame.schema[c] == pl.String else "n"}">{_e(c)}</th>'
        for c in frame.columns
    )
    rows = []
    for row in frame.head(max_rows).iter_rows(named=True):
        tds = []
        for c, v in row.items():
            cls = "s" if frame.schema[c] == pl.String else ("sig" if v is True else "n")
            tds.append(f'<td class="{cls}">{_e(cell(v, digits).replace(chr(92), ""))}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    more = (
        f'<p class="muted">{frame.height - max_rows} more rows in tables/.</p>'
        if frame.height > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _matrix(frame: pl.DataFrame) -> tuple[list[list[float | None]], list[str], list[str]]:
    cols = [c for c in frame.columns if c != "lang"]
    return [list(r) for r in frame.select(cols).iter_rows()], frame["lang"].to_list(), cols


def _xy(x: pl.Series, y: pl.Series) -> list[tuple[float, float | None]]:
    return list(zip(x.to_list(), y.to_list(), strict=True))


def _card(body: str) -> str:
    return f'<div class="card">{body}</div>'


def _range(frames: Sequence[pl.DataFrame]) -> tuple[float, float]:
    vals = [
        v
        for f in frames
        for c in f.columns
        if c != "lang"
        for v in f[c].to_list()
        if v is not None and math.isfinite(v)
    ]
    return (min(vals, default=0.0), max(vals, default=1.0))


# --------------------------------------------------------------------------- sections


def _results_section(res: pl.DataFrame, key: str, projection: pl.DataFrame | None) -> str:
    """Heatmaps, layer curves and the projection of one set of results."""
    out = []
    grid = tables.recall_lang_domain(res)
    if grid.height:
        lo, hi = _range([grid])
        m, rows, cols = _matrix(grid)
        title = f"{tables.primary_metric(res)}: query language x domain"
        out.append(_card(svg.heatmap(m, rows, cols, title, vmin=min(lo, 0.0), vmax=max(hi, 1e-9))))
    layers = tables.cka_layers(res)
    if layers:
        group = f"cka-{key}"
        opts = "".join(
            f'<option value="{layer}"{_SELECTED if layer == layers[-1] else ""}>'
            f"layer {layer}</option>"
            for layer in layers
        )
        panels = []
        mats = {layer: tables.cka_lang_lang(res, layer) for layer in layers}
        lo, _ = _range(list(mats.values()))
        for layer, frame in mats.items():
            m, rows, cols = _matrix(frame)
            label = tables.cka_label(tables.cka_metric(res))
            chart = svg.heatmap(m, rows, cols, f"{label}, layer {layer}", vmin=lo, vmax=1.0)
            panels.append(f'<div data-panel="{group}" data-layer="{layer}">{chart}</div>')
        picker = (
            f'<label>CKA layer <select class="layer-select" data-group="{group}">{opts}</select>'
            "</label>"
        )
        out.append(_card(picker + "".join(panels)))
    curves = _layer_curves(res)
    if curves:
        out.append(_card(curves))
    if projection is not None and projection.height:
        out.append(_projection(projection))
    return '<div class="grid">' + "".join(out) + "</div>"


def _layer_curves(res: pl.DataFrame) -> str:
    series: dict[str, list[tuple[float, float | None]]] = {}
    cka = tables.cka_by_layer(res)
    if cka.height:
        series["mean cross-lang CKA"] = _xy(cka["layer"], cka["mean_cka"])
    probes = tables.probe_by_layer(res)
    for metric in tables.PROBE_METRICS:
        if metric in probes.columns:
            series[metric] = _xy(probes["layer"], probes[metric])
    if not series:
        return ""
    return svg.line_chart(series, "CKA and probe accuracy by layer", "layer", 0.0, 1.0)


def _projection(projection: pl.DataFrame) -> str:
    top = int(projection["layer"].max()) if "layer" in projection.columns else None  # type: ignore[arg-type]
    pts = projection.filter(pl.col("layer") == top) if top is not None else projection
    stride = max(1, math.ceil(pts.height / MAX_POINTS))
    pts = pts.gather_every(stride)
    method = str(pts["method"][0]) if "method" in pts.columns else "projection"
    xs, ys = pts["x"].cast(pl.Float64).to_list(), pts["y"].cast(pl.Float64).to_list()
    ids = pts["id"].to_list() if "id" in pts.columns else None
    charts = [
        svg.scatter(xs, ys, pts[by].to_list(), f"{method} layer {top}, by {by}", ids)
        for by in ("lang", "domain")
        if by in pts.columns
    ]
    shown = f" ({pts.height} of {projection.filter(pl.col('layer') == top).height} points)"
    return "".join(_card(c) for c in charts) + (
        f'<p class="muted">projection{shown}</p>' if stride > 1 else ""
    )


def _run_curves(src: Source) -> str:
    steps, evals = run_tables.step_table(src.events), run_tables.eval_table(src.events)
    if steps.height > MAX_CURVE_POINTS:  # a long run: every k-th step, and always the last
        stride = math.ceil(steps.height / MAX_CURVE_POINTS)
        steps = pl.concat([steps.gather_every(stride), steps.tail(1)]).unique("step", keep="first")
        steps = steps.sort("step")
    charts = []
    if steps.height:
        loss_cols = ["loss"] + [c for c in steps.columns if c.startswith("c_") and "acc" not in c]
        series = {c: _xy(steps["step"], steps[c]) for c in loss_cols}
        charts.append(svg.line_chart(series, "training loss and components"))
        if "lr" in steps.columns:
            lr = {"lr": _xy(steps["step"], steps["lr"])}
            charts.append(svg.line_chart(lr, "learning rate", width=420))
    if evals.height:
        cols = [c for c in evals.columns if c != "step"]
        series = {c: _xy(evals["step"], evals[c]) for c in cols}
        charts.append(svg.line_chart(series, "dev evaluations", width=640))
    return '<div class="grid">' + "".join(_card(c) for c in charts) + "</div>"


def _study(src: Source, key: str) -> str:
    out = []
    fig = src.figures
    if fig is not None and fig.height:
        cmp = src.comparison
        baseline = cmp["baseline"][0] if cmp is not None and cmp.height else None
        overall = fig.filter((pl.col("lang") == "all") & (pl.col("domain") == "all"))
        charts = []
        for name in overall["figure"].unique(maintain_order=True).to_list():
            part = overall.filter(pl.col("figure") == name)
            items = list(part.select("variant", "value", "ci_low", "ci_high").iter_rows())
            ref = part.filter(pl.col("variant") == baseline)["value"] if baseline else None
            refv = float(ref[0]) if ref is not None and ref.len() else None
            charts.append(_card(svg.intervals(items, f"{name} by variant (95% CI)", refv)))
        out.append('<div class="grid">' + "".join(charts) + "</div>")
        if baseline:
            out.append(f'<p class="muted">dashed line: the baseline {_e(baseline)}</p>')
    if "variant" in src.results.columns:
        grids = {
            v: tables.recall_lang_domain(
                tables.seed_mean(src.results.filter(pl.col("variant") == v))
            )
            for v in src.results["variant"].unique(maintain_order=True).to_list()
        }
        lo, hi = _range([g for g in grids.values() if g.height])
        heat = []
        for v, grid in grids.items():
            if grid.height:
                m, rows, cols = _matrix(grid)
                title = f"{v}: recall@1 (seed mean)"
                heat.append(
                    _card(svg.heatmap(m, rows, cols, title, vmin=lo, vmax=max(hi, lo + 1e-9)))
                )
        if heat:
            out.append("<h3>Recall@1 by query language x domain, per variant</h3>")
            out.append('<div class="grid">' + "".join(heat) + "</div>")
    return "".join(out)


def _comparison(cmp: pl.DataFrame) -> str:
    out = ["<h2>Comparison (delta = B - A)</h2>"]
    out.append(
        '<p class="muted">significant: the two bootstrap intervals do not overlap; '
        "exceeds: |delta| above the threshold.</p>"
    )
    out.append(html_table(comparison_summary(cmp), 4))
    heat = []
    for b in cmp["b"].unique(maintain_order=True).to_list():
        part = cmp.filter(pl.col("b") == b).with_columns(pl.col("delta").alias("value"))
        grid = tables.recall_lang_domain(part)
        if grid.height:
            m, rows, cols = _matrix(grid)
            lo, hi = _range([grid])
            bound = max(abs(lo), abs(hi), 1e-6)
            title = f"delta recall@1 ({b} - {cmp['a'][0]})"
            heat.append(_card(svg.heatmap(m, rows, cols, title, -bound, bound, diverging=True)))
    out.append('<div class="grid">' + "".join(heat) + "</div>")
    out.append("<h3>Largest changes</h3>" + html_table(top_changes(cmp), 4))
    return "".join(out)


def _tables(pivots: dict[str, pl.DataFrame]) -> str:
    return "".join(
        f"<details><summary>{_e(title_of(name))}</summary>{html_table(frame)}</details>"
        for name, frame in pivots.items()
    )


def render_html(bundle: Bundle) -> str:
    """The whole report.html."""
    body = ["<h1>xrdiag report</h1>"]
    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    inputs = ", ".join(f"<code>{_e(s.label)}</code> ({_e(s.kind)})" for s in bundle.sources)
    body.append(f'<p class="muted">{created}. Inputs: {inputs}</p>')
    body += [f'<div class="note">{_e(n)}</div>' for n in bundle.notes]
    lines = [line for src in bundle.sources for line in findings(src)]
    body.append("<h2>Headline findings</h2><ul>")
    body += [f"<li>{_e(line)}</li>" for line in lines] or ["<li>no results yet</li>"]
    body.append("</ul>")
    if bundle.comparison is not None:
        body.append(_comparison(bundle.comparison))
    for k, src in enumerate(bundle.sources):
        body.append(f'<h2>{_e(src.label)} <span class="muted">({_e(src.kind)})</span></h2>')
        if src.status:
            body.append(f"<p>Status: {_e(src.status)}</p>")
        if src.kind == "run" and src.events:
            body.append("<h3>Training curves</h3>" + _run_curves(src))
        if src.kind == "study":
            body.append("<h3>Variants</h3>" + _study(src, f"s{k}"))
        head = src.headline_results()
        if head.height:
            which = {"run": f"diagnostics {head['checkpoint'][0]}", "study": "base model"}
            body.append(f"<h3>Alignment: {_e(which.get(src.kind, src.label))}</h3>")
            body.append(_results_section(head, f"s{k}", src.projection))
        body.append("<h3>Tables</h3>" + _tables(bundle.pivots.get(src.label, {})))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>xrdiag report</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + f"<script>{JS}</script></body></html>\n"
    )
