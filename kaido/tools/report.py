"""Run reports: one self-contained HTML page per run or route set, and comparisons of two.

:func:`load_result_set` reads a ``results.json`` that ``kaido drive`` (one route, ``run.mcap`` and
``bev.mp4`` beside it) or ``kaido eval`` (a route set, each route's files in ``route_<id>/``)
wrote, with each route's ego-state time series, planner cost terms (``/kaido/metrics`` numbers
whose name holds ``cost``, when the log has them) and the last camera image of every camera,
read from its ``run.mcap``. :func:`render_report` and :func:`render_comparison` turn one or two
such sets into HTML; :func:`write_report` does both steps for ``kaido report``.

The page is one file: CSS and JavaScript inline, plots inline SVG drawn here (no plotting
library), camera stills as ``data:`` URIs. Each BEV video is embedded as a ``data:`` URI when
the videos together stay within ``max_embed_bytes``; otherwise the ``<video>`` element links the
file by a path relative to the HTML file (the page then needs the run folder beside it). MCAP
files are always linked (relative paths), for opening in Foxglove.

The inline script writes a ``<div id="kaido-report-ready">`` (with the counts of plots and
videos it found) once the page has loaded, and a ``<div id="kaido-report-error">`` for any
script error, so a headless browser's DOM dump shows that the page rendered.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kaido.logs.mcap_log import log_summary, read_log
from kaido.simulation.results import InfractionKind, RouteResult
from kaido.simulation.video import BROWSER_CODECS, mp4_video_codec

__all__ = [
    "DEFAULT_MAX_EMBED_BYTES",
    "EGO_STATE_TOPIC",
    "METRICS_TOPIC",
    "CameraStill",
    "CostSeries",
    "EgoSeries",
    "PlotId",
    "ResultSet",
    "RouteReport",
    "SeriesIndex",
    "load_result_set",
    "read_route_log",
    "render_comparison",
    "render_report",
    "write_report",
]

EGO_STATE_TOPIC = "/kaido/ego_state"
METRICS_TOPIC = "/kaido/metrics"
DEFAULT_MAX_EMBED_BYTES = 32 * 1024 * 1024
"""[bytes] Largest total size of BEV videos embedded as ``data:`` URIs in one page."""


CostSeries = dict[str, npt.NDArray[np.float64]]
"""Planner cost term name → (2, T) rows: time [s] and value."""


class PlotId:
    """``data-plot`` names of the page's figures (a test and a reader can look for them)."""

    SCORE_DISTRIBUTION = "score-distribution"
    INFRACTION_COUNTS = "infraction-counts"
    SPEED = "speed"
    COMFORT = "comfort"
    PLANNER_COSTS = "planner-costs"
    COMPARE_SCORES = "compare-scores"


class SeriesIndex(IntEnum):
    """Columns of :attr:`EgoSeries.values`."""

    SPEED = 0
    """[m/s]"""
    AX = 1
    """Longitudinal acceleration in the ego frame [m/s²]."""
    AY = 2
    """Lateral acceleration in the ego frame [m/s²]."""
    JERK = 3
    """Longitudinal jerk, finite difference of ``AX`` [m/s³]."""
    YAW_RATE = 4
    """[rad/s]"""


_SERIES_KEYS = {
    SeriesIndex.SPEED: "speed",
    SeriesIndex.AX: "ax",
    SeriesIndex.AY: "ay",
    SeriesIndex.YAW_RATE: "yaw_rate",
}


@dataclass(frozen=True)
class EgoSeries:
    """The ego's state over a run, from ``/kaido/ego_state``."""

    t_s: npt.NDArray[np.float64]
    """(T,) time since the first message [s]."""
    values: npt.NDArray[np.float64]
    """(T, 5) columns named by :class:`SeriesIndex`; NaN where the log wrote null."""


@dataclass(frozen=True)
class CameraStill:
    """One camera image from a run's log."""

    camera: str
    """Camera name (the topic is ``/camera/<name>/image``)."""
    time_s: float
    """Time since the log's first message [s]."""
    mime: str
    """e.g. ``image/jpeg``."""
    data: bytes
    """The compressed image as stored in the log."""


@dataclass(frozen=True)
class RouteReport:
    """One route of a result set, with what its folder holds."""

    result: RouteResult
    folder: Path | None
    """The route's output folder (None when it cannot be found)."""
    mcap: Path | None
    video: Path | None
    series: EgoSeries | None
    """None when there is no readable log."""
    costs: CostSeries = field(default_factory=dict)
    """Planner cost term name → (2, T) rows time [s] and value; empty when the log has none."""
    stills: tuple[CameraStill, ...] = ()
    log_error: str | None = None
    """Why the log could not be read (or where a truncated one broke), else None."""


@dataclass(frozen=True)
class ResultSet:
    """A ``results.json`` and its routes."""

    path: Path
    global_record: Mapping[str, Any]
    """The leaderboard's ``_checkpoint.global_record``."""
    entry_status: str
    routes: tuple[RouteReport, ...]

    @property
    def name(self) -> str:
        """A short label: the results file's folder name."""
        return self.path.parent.name or str(self.path)


def _safe_route_dir(route_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in route_id)
    return f"route_{safe}"


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def read_route_log(
    path: Path,
) -> tuple[EgoSeries | None, CostSeries, tuple[CameraStill, ...], str | None]:
    """Ego series, planner cost terms, last image per camera and read error of one ``run.mcap``."""
    summary = log_summary(path)
    topics = [t for t in summary["topics"] if t in (EGO_STATE_TOPIC, METRICS_TOPIC)]
    cameras = [t for t in summary["topics"] if t.startswith("/camera/") and t.endswith("/image")]
    start_ns = summary["start_ns"] or 0
    times: list[float] = []
    rows: list[list[float]] = []
    cost_rows: dict[str, list[tuple[float, float]]] = {}
    stills: dict[str, CameraStill] = {}
    for msg in read_log(path, topics=topics + cameras):
        t = (msg.log_time_ns - start_ns) * 1e-9
        if msg.topic == EGO_STATE_TOPIC:
            body = msg.message
            times.append(t)
            rows.append(
                [
                    _number(body.get(_SERIES_KEYS[SeriesIndex.SPEED])),
                    _number(body.get(_SERIES_KEYS[SeriesIndex.AX])),
                    _number(body.get(_SERIES_KEYS[SeriesIndex.AY])),
                    math.nan,
                    _number(body.get(_SERIES_KEYS[SeriesIndex.YAW_RATE])),
                ]
            )
        elif msg.topic == METRICS_TOPIC:
            for key, value in msg.message.items():
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                if "cost" in key and numeric:
                    cost_rows.setdefault(key, []).append((t, float(value)))
        else:
            name = msg.topic[len("/camera/") : -len("/image")]
            fmt = str(getattr(msg.message, "format", "jpeg")).lower() or "jpeg"
            stills[name] = CameraStill(
                camera=name, time_s=t, mime=f"image/{fmt}", data=bytes(msg.message.data)
            )
    series = None
    if times:
        values = np.asarray(rows, dtype=np.float64)
        t_arr = np.asarray(times, dtype=np.float64)
        if len(t_arr) > 1:
            dt = np.diff(t_arr)
            jerk = np.diff(values[:, SeriesIndex.AX]) / np.where(dt > 0, dt, np.nan)
            values[1:, SeriesIndex.JERK] = jerk
        series = EgoSeries(t_s=t_arr, values=values)
    costs = {k: np.asarray(v, dtype=np.float64).T for k, v in sorted(cost_rows.items())}
    error = None if summary["complete"] else summary["error"]
    return series, costs, tuple(stills[k] for k in sorted(stills)), error


def _route_report(result: RouteResult, base: Path, single: bool) -> RouteReport:
    folder: Path | None = base / _safe_route_dir(result.route_id)
    if not (base / _safe_route_dir(result.route_id)).is_dir():
        folder = base if single and (base / "run.mcap").exists() else None
    if folder is None:
        return RouteReport(result, None, None, None, None, log_error="no route folder found")
    mcap = folder / "run.mcap"
    video = folder / "bev.mp4"
    mcap_path = mcap if mcap.is_file() else None
    video_path = video if video.is_file() and video.stat().st_size > 0 else None
    if mcap_path is None:
        return RouteReport(result, folder, None, video_path, None, log_error="no run.mcap")
    try:
        series, costs, stills, error = read_route_log(mcap_path)
    except (OSError, ValueError) as err:
        return RouteReport(result, folder, mcap_path, video_path, None, log_error=str(err))
    return RouteReport(result, folder, mcap_path, video_path, series, costs, stills, error)


def load_result_set(path: Path) -> ResultSet:
    """Read a ``results.json`` (a file, or a folder holding one) and its routes' logs."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ValueError(f"results: no such file {path}")
    try:
        doc = json.loads(path.read_text())
        checkpoint = doc["_checkpoint"]
        global_record = checkpoint["global_record"]
        records = checkpoint["records"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a leaderboard results file ({err})") from err
    results = [RouteResult.from_json(r) for r in records]
    single = len(results) == 1
    routes = tuple(_route_report(r, path.parent, single) for r in results)
    return ResultSet(
        path=path,
        global_record=global_record,
        entry_status=str(doc.get("entry_status", "")),
        routes=routes,
    )


# ---------------------------------------------------------------------------------------------
# SVG plots

_W, _H = 640, 240
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 56, 16, 24, 40
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _svg_open(plot_id: str, title: str) -> list[str]:
    return [
        f'<figure class="plot" data-plot="{plot_id}"><figcaption>{html.escape(title)}</figcaption>',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="{html.escape(title)}">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#fff"/>',
    ]


def _axes(lo: float, hi: float, y_label: str, x_label: str) -> list[str]:
    x0, x1, y0, y1 = _PAD_L, _W - _PAD_R, _H - _PAD_B, _PAD_T
    out = [
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = y0 - frac * (y0 - y1)
        out.append(
            f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_fmt(lo + frac * (hi - lo))}</text>"
        )
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eee"/>')
    out.append(
        f'<text x="12" y="{(y0 + y1) / 2:.1f}" font-size="11" transform="rotate(-90 12 '
        f'{(y0 + y1) / 2:.1f})" text-anchor="middle">{html.escape(y_label)}</text>'
    )
    out.append(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{_H - 6}" font-size="11" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    return out


def _range(values: npt.NDArray[np.float64], include_zero: bool = True) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-9:
        hi = lo + 1.0
    return lo, hi


def svg_bars(
    plot_id: str,
    title: str,
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    y_label: str,
) -> str:
    """A bar chart: one bar per label and group (G groups side by side), as a ``<figure>``."""
    data = np.asarray([list(v) for v in groups.values()], dtype=np.float64).reshape(
        len(groups), len(labels)
    )
    lo, hi = _range(data)
    parts = _svg_open(plot_id, title) + _axes(lo, hi, y_label, "")
    x0, x1, y0, y1 = _PAD_L, _W - _PAD_R, _H - _PAD_B, _PAD_T
    n = max(len(labels), 1)
    slot = (x1 - x0) / n
    width = 0.8 * slot / max(len(groups), 1)

    def y_of(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    for i, label in enumerate(labels):
        for g, (name, _) in enumerate(groups.items()):
            v = data[g, i]
            if not math.isfinite(v):
                continue
            top, base = y_of(max(v, 0.0)), y_of(min(v, 0.0))
            x = x0 + i * slot + 0.1 * slot + g * width
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" '
                f'height="{max(base - top, 0.5):.1f}" fill="{_PALETTE[g % len(_PALETTE)]}">'
                f"<title>{html.escape(name)} {html.escape(label)}: {_fmt(v)}</title></rect>"
            )
        short = label if len(label) <= 14 else label[:13] + "…"
        parts.append(
            f'<text x="{x0 + (i + 0.5) * slot:.1f}" y="{y0 + 14}" font-size="10" '
            f'text-anchor="middle">{html.escape(short)}</text>'
        )
    parts += _legend(list(groups))
    parts.append("</svg></figure>")
    return "\n".join(parts)


def _legend(names: Sequence[str]) -> list[str]:
    if len(names) < 2:
        return []
    out = []
    for g, name in enumerate(names):
        x = _PAD_L + 8 + g * 140
        out.append(
            f'<rect x="{x}" y="6" width="10" height="10" fill="{_PALETTE[g % len(_PALETTE)]}"/>'
            f'<text x="{x + 14}" y="15" font-size="11">{html.escape(name)}</text>'
        )
    return out


def svg_lines(
    plot_id: str,
    title: str,
    lines: Mapping[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    y_label: str,
    x_label: str = "time [s]",
) -> str:
    """Line plot of named (x, y) series (each (T,) arrays; NaN breaks a line), as a ``<figure>``."""
    xs = [np.asarray(x, dtype=np.float64) for x, _ in lines.values()]
    ys = [np.asarray(y, dtype=np.float64) for _, y in lines.values()]
    all_x = np.concatenate(xs) if xs else np.zeros(0)
    all_y = np.concatenate(ys) if ys else np.zeros(0)
    x_lo, x_hi = _range(all_x, include_zero=False)
    lo, hi = _range(all_y)
    parts = _svg_open(plot_id, title) + _axes(lo, hi, y_label, x_label)
    x0, x1, y0, y1 = _PAD_L, _W - _PAD_R, _H - _PAD_B, _PAD_T
    parts.append(
        f'<text x="{x0}" y="{y0 + 14}" font-size="10">{_fmt(x_lo)}</text>'
        f'<text x="{x1}" y="{y0 + 14}" font-size="10" text-anchor="end">{_fmt(x_hi)}</text>'
    )
    for g, (x, y) in enumerate(zip(xs, ys, strict=True)):
        px = x0 + (x - x_lo) / (x_hi - x_lo) * (x1 - x0)
        py = y0 - (y - lo) / (hi - lo) * (y0 - y1)
        ok = np.isfinite(px) & np.isfinite(py)
        commands: list[str] = []
        pen_down = False
        for a, b, good in zip(px, py, ok, strict=True):
            if not good:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{a:.1f},{b:.1f}")
            pen_down = True
        parts.append(
            f'<path d="{" ".join(commands)}" fill="none" stroke-width="1.5" '
            f'stroke="{_PALETTE[g % len(_PALETTE)]}"/>'
        )
    parts += _legend(list(lines))
    parts.append("</svg></figure>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right;font-size:13px}th{background:#f4f4f4}td.l,th.l{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:13px;
font-weight:600}.route{border:1px solid #ddd;padding:8px 12px;margin:12px 0;border-radius:6px}
.media{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.media img{max-width:480px}
.pos{color:#1a7f37}.neg{color:#c62828}.note{color:#666;font-size:13px}
"""

_JS = """
(function(){
  function mark(id, attrs){
    var d=document.createElement('div'); d.id=id;
    for (var k in attrs) d.setAttribute(k, attrs[k]);
    d.style.display='none'; document.body.appendChild(d);
  }
  window.addEventListener('error', function(e){
    mark('kaido-report-error', {'data-message': String(e.message)});
  });
  document.addEventListener('DOMContentLoaded', function(){
    var plots=document.querySelectorAll('figure.plot svg').length;
    var videos=document.querySelectorAll('video').length;
    var tables=document.querySelectorAll('table').length;
    document.querySelectorAll('td[data-delta]').forEach(function(td){
      var v=parseFloat(td.getAttribute('data-delta'));
      if (v>0) td.classList.add('pos'); else if (v<0) td.classList.add('neg');
    });
    mark('kaido-report-ready', {'data-plots': plots, 'data-videos': videos,
                                'data-tables': tables});
  });
})();
"""


def _page(title: str, body: Sequence[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style>",
            f"<script>{_JS}</script>",
            "</head><body>",
            *body,
            "</body></html>",
        ]
    )


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _infraction_counts(route: RouteResult) -> dict[str, int]:
    counts = {kind.key: 0 for kind in InfractionKind}
    for infraction in route.infractions:
        counts[infraction.kind.key] += 1
    return counts


def _total_counts(rs: ResultSet) -> dict[str, int]:
    total = {kind.key: 0 for kind in InfractionKind}
    for route in rs.routes:
        for key, n in _infraction_counts(route.result).items():
            total[key] += n
    return total


def _global_scores(rs: ResultSet) -> dict[str, float]:
    means = rs.global_record.get("scores_mean", {})
    kaido = rs.global_record.get("kaido", {})
    return {
        "DS": _number(means.get("score_composed")),
        "RC": _number(means.get("score_route")),
        "IP": _number(means.get("score_penalty")),
        "km": _number(kaido.get("km_driven")),
    }


def _per_km(rs: ResultSet) -> dict[str, float]:
    block = rs.global_record.get("infractions", {})
    return {kind.key: _number(block.get(kind.key)) for kind in InfractionKind}


def _rel(target: Path, out: Path) -> str:
    return Path(os.path.relpath(target.resolve(), out.resolve().parent)).as_posix()


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _summary_table(rs: ResultSet) -> str:
    g = _global_scores(rs)
    per_km = _per_km(rs)
    counts = _total_counts(rs)
    rows = [
        '<table id="summary" class="summary"><tr><th class="l">metric</th><th>value</th></tr>',
        f'<tr><td class="l">entry status</td><td>{_cell(rs.entry_status)}</td></tr>',
        f'<tr><td class="l">routes</td><td>{len(rs.routes)}</td></tr>',
        f'<tr><td class="l">global driving score DS [%]</td><td>{_cell(g["DS"])}</td></tr>',
        f'<tr><td class="l">route completion RC [%]</td><td>{_cell(g["RC"])}</td></tr>',
        f'<tr><td class="l">infraction penalty IP</td><td>{_cell(g["IP"])}</td></tr>',
        f'<tr><td class="l">km driven</td><td>{_cell(g["km"])}</td></tr>',
        '<tr><th class="l">infraction</th><th>per km (count)</th></tr>',
    ]
    for kind in InfractionKind:
        unit = " [km]" if kind is InfractionKind.OUTSIDE_ROUTE_LANES else ""
        rows.append(
            f'<tr><td class="l">{kind.key}{unit}</td><td>{_cell(per_km[kind.key])} '
            f"({counts[kind.key]})</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _routes_table(rs: ResultSet) -> str:
    rows = [
        '<table id="routes"><tr><th class="l">route</th><th class="l">status</th><th>DS [%]</th>'
        "<th>RC [%]</th><th>IP</th><th>length [m]</th><th>driven [m]</th>"
        '<th class="l">infractions</th></tr>'
    ]
    for route in rs.routes:
        r = route.result
        infractions = (
            ", ".join(f"{k} ×{n}" for k, n in _infraction_counts(r).items() if n > 0) or "none"
        )
        rows.append(
            f'<tr><td class="l"><a href="#route-{html.escape(r.route_id)}">'
            f'{html.escape(r.route_id)}</a></td><td class="l">{html.escape(r.status)}</td>'
            f"<td>{_cell(r.driving_score, 2)}</td><td>{_cell(r.route_completion, 2)}</td>"
            f"<td>{_cell(r.infraction_penalty)}</td><td>{_cell(r.route_length_m, 1)}</td>"
            f"<td>{_cell(r.distance_driven_m, 1)}</td>"
            f'<td class="l">{html.escape(infractions)}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _score_histogram(groups: Mapping[str, Sequence[float]]) -> str:
    edges = np.linspace(0.0, 100.0, 11)
    labels = [f"{int(edges[i])}-{int(edges[i + 1])}" for i in range(10)]
    hist = {}
    for name, scores in groups.items():
        clipped = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 100.0)
        hist[name] = np.histogram(clipped, bins=edges)[0].astype(np.float64).tolist()
    return svg_bars(PlotId.SCORE_DISTRIBUTION, "Driving score distribution", labels, hist, "routes")


def _infraction_plot(groups: Mapping[str, Mapping[str, int]]) -> str:
    keys = [kind.key for kind in InfractionKind]
    data = {name: [float(c[k]) for k in keys] for name, c in groups.items()}
    return svg_bars(PlotId.INFRACTION_COUNTS, "Infraction counts", keys, data, "count")


def _route_section(route: RouteReport, out: Path, embed_video: bool) -> str:
    r = route.result
    parts = [
        f'<section class="route" id="route-{html.escape(r.route_id)}">',
        f"<h3>route {html.escape(r.route_id)} — {html.escape(r.status)}: DS "
        f"{_cell(r.driving_score, 2)} %, RC {_cell(r.route_completion, 2)} %, IP "
        f"{_cell(r.infraction_penalty)}</h3>",
    ]
    if r.crash_message:
        parts.append(f'<p class="note">crash: {html.escape(r.crash_message)}</p>')
    if r.infractions:
        parts.append(
            '<table class="infractions"><tr><th>t [s]</th><th class="l">kind</th>'
            '<th class="l">message</th></tr>'
        )
        for inf in r.infractions:
            parts.append(
                f'<tr><td>{_cell(inf.time_s, 2)}</td><td class="l">{inf.kind.key}</td>'
                f'<td class="l">{html.escape(inf.message)}</td></tr>'
            )
        parts.append("</table>")
    else:
        parts.append('<p class="note">no infractions</p>')
    parts.append('<div class="plots">')
    if route.series is not None:
        s = route.series
        t = s.t_s
        parts.append(
            svg_lines(
                PlotId.SPEED,
                "Speed",
                {"speed [m/s]": (t, s.values[:, SeriesIndex.SPEED])},
                "m/s",
            )
        )
        parts.append(
            svg_lines(
                PlotId.COMFORT,
                "Comfort: acceleration and jerk",
                {
                    "a_long [m/s²]": (t, s.values[:, SeriesIndex.AX]),
                    "a_lat [m/s²]": (t, s.values[:, SeriesIndex.AY]),
                    "jerk [m/s³]": (t, s.values[:, SeriesIndex.JERK]),
                },
                "m/s², m/s³",
            )
        )
    else:
        parts.append(f'<p class="note">no ego-state log: {html.escape(route.log_error or "")}</p>')
    if route.costs:
        parts.append(
            svg_lines(
                PlotId.PLANNER_COSTS,
                "Planner cost breakdown",
                {k: (v[0], v[1]) for k, v in route.costs.items()},
                "cost",
            )
        )
    else:
        parts.append(
            '<p class="note" data-absent="planner-costs">planner cost breakdown: absent '
            f"(the log has no cost terms on {METRICS_TOPIC})</p>"
        )
    parts.append("</div>")
    comfort = ", ".join(f"{k} {_cell(v)}" for k, v in sorted(r.comfort.items()))
    if comfort:
        parts.append(f'<p class="note">comfort: {html.escape(comfort)}</p>')
    parts.append('<div class="media">')
    if route.video is not None:
        src = (
            _data_uri("video/mp4", route.video.read_bytes())
            if embed_video
            else _rel(route.video, out)
        )
        codec = mp4_video_codec(route.video) or "unknown"
        note = (
            ""
            if codec in BROWSER_CODECS
            else f' <span class="note">({html.escape(codec)}: browsers may not play it; '
            "open the file in a video player)</span>"
        )
        parts.append(
            f'<figure><figcaption>BEV video</figcaption><video controls muted preload="metadata" '
            f'width="480" src="{src}" data-route="{html.escape(r.route_id)}" '
            f'data-codec="{html.escape(codec)}"></video>'
            f'<br><a href="{html.escape(_rel(route.video, out))}">bev.mp4</a>{note}</figure>'
        )
    else:
        parts.append('<p class="note">no BEV video</p>')
    for still in route.stills:
        parts.append(
            f'<figure class="still"><figcaption>camera {html.escape(still.camera)} at '
            f'{still.time_s:.1f} s</figcaption><img alt="camera {html.escape(still.camera)}" '
            f'src="{_data_uri(still.mime, still.data)}"></figure>'
        )
    parts.append("</div>")
    if route.mcap is not None:
        parts.append(
            f'<p>log for Foxglove: <a class="mcap" href="{html.escape(_rel(route.mcap, out))}">'
            f"{html.escape(_rel(route.mcap, out))}</a> (open it in Foxglove: File → Open local "
            "file)</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _embed_videos(sets: Sequence[ResultSet], max_embed_bytes: int) -> bool:
    total = sum(r.video.stat().st_size for rs in sets for r in rs.routes if r.video is not None)
    return total <= max_embed_bytes


def render_report(
    rs: ResultSet, out: Path, *, max_embed_bytes: int = DEFAULT_MAX_EMBED_BYTES
) -> str:
    """The HTML page of one result set; ``out`` is where it will be written (for links)."""
    embed = _embed_videos([rs], max_embed_bytes)
    scores = [r.result.driving_score for r in rs.routes]
    body = [
        f"<h1>kaido run report: {html.escape(rs.name)}</h1>",
        f'<p class="note">results: {html.escape(str(rs.path))}; videos '
        f"{'embedded' if embed else 'linked beside this page'}</p>",
        "<h2>Summary</h2>",
        _summary_table(rs),
        '<div class="plots">',
        _score_histogram({rs.name: scores}),
        _infraction_plot({rs.name: _total_counts(rs)}),
        "</div>",
        "<h2>Routes</h2>",
        _routes_table(rs),
        *(_route_section(route, out, embed) for route in rs.routes),
    ]
    return _page(f"kaido report {rs.name}", body)


def _delta_cell(a: float, b: float, digits: int = 3) -> str:
    if not (math.isfinite(a) and math.isfinite(b)):
        return "<td>–</td>"
    d = b - a
    return f'<td data-delta="{d:.6g}">{d:+.{digits}f}</td>'


def render_comparison(
    a: ResultSet, b: ResultSet, out: Path, *, max_embed_bytes: int = DEFAULT_MAX_EMBED_BYTES
) -> str:
    """The HTML page comparing result sets ``a`` and ``b`` (differences are ``b - a``)."""
    embed = _embed_videos([a, b], max_embed_bytes)
    label_a, label_b = f"A: {a.name}", f"B: {b.name}"
    if label_a == label_b:
        label_a, label_b = f"A: {a.path}", f"B: {b.path}"
    ga, gb = _global_scores(a), _global_scores(b)
    ka, kb = _per_km(a), _per_km(b)
    agg = [
        '<table id="summary" class="summary"><tr><th class="l">metric</th>'
        f"<th>{html.escape(label_a)}</th><th>{html.escape(label_b)}</th><th>B − A</th></tr>"
    ]
    names = {"DS": "global DS [%]", "RC": "RC [%]", "IP": "IP", "km": "km driven"}
    for key, name in names.items():
        agg.append(
            f'<tr><td class="l">{name}</td><td>{_cell(ga[key])}</td><td>{_cell(gb[key])}</td>'
            f"{_delta_cell(ga[key], gb[key])}</tr>"
        )
    for kind in InfractionKind:
        agg.append(
            f'<tr><td class="l">{kind.key} per km</td><td>{_cell(ka[kind.key])}</td>'
            f"<td>{_cell(kb[kind.key])}</td>{_delta_cell(ka[kind.key], kb[kind.key])}</tr>"
        )
    agg.append("</table>")
    by_a = {r.result.route_id: r for r in a.routes}
    by_b = {r.result.route_id: r for r in b.routes}
    ids = list(by_a) + [i for i in by_b if i not in by_a]
    rows = [
        '<table id="routes"><tr><th class="l">route</th><th>DS A</th><th>DS B</th><th>ΔDS</th>'
        "<th>RC A</th><th>RC B</th><th>ΔRC</th><th>IP A</th><th>IP B</th><th>ΔIP</th>"
        '<th class="l">status A</th><th class="l">status B</th><th>infr. A</th>'
        "<th>infr. B</th></tr>"
    ]
    for rid in ids:
        ra = by_a[rid].result if rid in by_a else None
        rb = by_b[rid].result if rid in by_b else None

        def vals(r: RouteResult | None) -> tuple[float, float, float]:
            if r is None:
                return math.nan, math.nan, math.nan
            return r.driving_score, r.route_completion, r.infraction_penalty

        (dsa, rca, ipa), (dsb, rcb, ipb) = vals(ra), vals(rb)
        rows.append(
            f'<tr><td class="l">{html.escape(rid)}</td><td>{_cell(dsa, 2)}</td>'
            f"<td>{_cell(dsb, 2)}</td>{_delta_cell(dsa, dsb, 2)}<td>{_cell(rca, 2)}</td>"
            f"<td>{_cell(rcb, 2)}</td>{_delta_cell(rca, rcb, 2)}<td>{_cell(ipa)}</td>"
            f"<td>{_cell(ipb)}</td>{_delta_cell(ipa, ipb)}"
            f'<td class="l">{html.escape(ra.status if ra else "missing")}</td>'
            f'<td class="l">{html.escape(rb.status if rb else "missing")}</td>'
            f"<td>{len(ra.infractions) if ra else '–'}</td>"
            f"<td>{len(rb.infractions) if rb else '–'}</td></tr>"
        )
    rows.append("</table>")
    per_route = svg_bars(
        PlotId.COMPARE_SCORES,
        "Driving score per route",
        ids,
        {
            label_a: [by_a[i].result.driving_score if i in by_a else math.nan for i in ids],
            label_b: [by_b[i].result.driving_score if i in by_b else math.nan for i in ids],
        },
        "DS [%]",
    )
    body = [
        f"<h1>kaido comparison: {html.escape(label_a)} vs {html.escape(label_b)}</h1>",
        f'<p class="note">A: {html.escape(str(a.path))}<br>B: {html.escape(str(b.path))}; '
        f"differences are B − A; videos {'embedded' if embed else 'linked beside this page'}"
        "</p>",
        "<h2>Aggregate</h2>",
        "\n".join(agg),
        '<div class="plots">',
        per_route,
        _score_histogram(
            {
                label_a: [r.result.driving_score for r in a.routes],
                label_b: [r.result.driving_score for r in b.routes],
            }
        ),
        _infraction_plot({label_a: _total_counts(a), label_b: _total_counts(b)}),
        "</div>",
        "<h2>Per route</h2>",
        "\n".join(rows),
    ]
    for rid in ids:
        body.append(f"<h2>route {html.escape(rid)}</h2>")
        body.append('<div class="media">')
        for label, side in ((label_a, by_a), (label_b, by_b)):
            body.append(f"<div><h3>{html.escape(label)}</h3>")
            if rid in side:
                body.append(_route_section(side[rid], out, embed))
            else:
                body.append('<p class="note">not in this result set</p>')
            body.append("</div>")
        body.append("</div>")
    return _page(f"kaido comparison {a.name} vs {b.name}", body)


def write_report(
    results: Sequence[Path], out: Path, *, max_embed_bytes: int = DEFAULT_MAX_EMBED_BYTES
) -> Path:
    """Write the report of one result set, or the comparison of two, to ``out``; return it."""
    if len(results) not in (1, 2):
        raise ValueError(f"results: expected one or two results files, got {len(results)}")
    if max_embed_bytes < 0:
        raise ValueError(f"max_embed_bytes: must be >= 0, got {max_embed_bytes}")
    out = Path(out)
    sets = [load_result_set(Path(p)) for p in results]
    if len(sets) == 1:
        page = render_report(sets[0], out, max_embed_bytes=max_embed_bytes)
    else:
        page = render_comparison(sets[0], sets[1], out, max_embed_bytes=max_embed_bytes)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
