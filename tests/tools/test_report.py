"""``kaido report``: HTML reports of a real short drive and a 2-route eval, checked in Chromium."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from kaido.simulation.drive import DriveOptions, drive
from kaido.tools import cmd_report
from kaido.tools.cmd_eval import EvalOptions, evaluate
from kaido.tools.report import PlotId, load_result_set, write_report

SECONDS = 3.0


class _Dom(HTMLParser):
    """Tags with their attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


def _parse(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    return dom


@pytest.fixture(scope="module")
def drive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drive")
    drive(DriveOptions(out_dir=out, seconds=SECONDS, sensors=True, video=True, progress=False))
    return out


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    evaluate(
        EvalOptions(
            routes=None,
            out_dir=out,
            generated=2,
            seconds=SECONDS,
            sensors=False,
            video=True,
            workers=0,
            progress=False,
        )
    )
    return out


def main(argv: list[str]) -> int:
    """``kaido report ARGV`` through the subcommand's own parser."""
    parser = argparse.ArgumentParser(prog="kaido")
    cmd_report.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _plot_ids(dom: _Dom) -> set[str | None]:
    return {a.get("data-plot") for a in dom.find("figure")}


def test_drive_report_content(drive_dir: Path, tmp_path: Path) -> None:
    out = write_report([drive_dir / "results.json"], tmp_path / "report.html")
    dom = _parse(out.read_text())
    assert dom.find("table", id="summary")
    assert dom.find("table", id="routes")
    assert {
        PlotId.SCORE_DISTRIBUTION,
        PlotId.INFRACTION_COUNTS,
        PlotId.SPEED,
        PlotId.COMFORT,
        PlotId.PLANNER_COSTS,  # the expert records its plan's cost terms every tick
    } <= _plot_ids(dom)
    assert not dom.find("p", data_absent="planner-costs")
    videos = dom.find("video")
    assert len(videos) == 1 and (videos[0]["src"] or "").startswith("data:video/mp4;base64,")
    images = dom.find("img")
    assert images and all((i["src"] or "").startswith("data:image/jpeg;base64,") for i in images)
    links = [a["href"] for a in dom.find("a", **{"class": "mcap"})]
    assert links and all((out.parent / str(h)).resolve() == drive_dir / "run.mcap" for h in links)


def test_eval_report_content_and_video_links(eval_dir: Path, tmp_path: Path) -> None:
    result_set = load_result_set(eval_dir)
    assert [r.result.route_id for r in result_set.routes] == ["seed0", "seed1"]
    assert all(r.series is not None and len(r.series.t_s) > 10 for r in result_set.routes)
    out = write_report([eval_dir], tmp_path / "sub" / "report.html", max_embed_bytes=0)
    dom = _parse(out.read_text())
    videos = dom.find("video")
    assert len(videos) == 2
    for video in videos:  # too big to embed at max_embed_bytes=0: linked, relative to the page
        src = str(video["src"])
        assert not src.startswith("data:") and (out.parent / src).resolve().is_file()
    assert len([a for a in dom.find("figure") if a.get("data-plot") == PlotId.SPEED]) == 2
    doc = json.loads((eval_dir / "results.json").read_text())
    ds = doc["_checkpoint"]["global_record"]["scores_mean"]["score_composed"]
    assert f"{ds:.3f}" in out.read_text()


def test_cli_comparison_and_bad_input(drive_dir: Path, eval_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    assert main(["report", str(eval_dir), str(drive_dir), "--out", str(out)]) == 0
    dom = _parse(out.read_text())
    assert dom.find("table", id="summary") and dom.find("table", id="routes")
    assert PlotId.COMPARE_SCORES in _plot_ids(dom)
    assert len(dom.find("video")) == 3
    deltas = [a["data-delta"] for t, a in dom.tags if t == "td" and "data-delta" in a]
    assert deltas  # the aggregate rows carry B - A
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(out)]) == 2
    (tmp_path / "bad.json").write_text("{}")
    assert main(["report", str(tmp_path / "bad.json"), "--out", str(out)]) == 2


def _chromium_dom(page: Path, *options: str) -> tuple[str, str]:
    """The DOM headless Chromium renders from ``page`` (and its stderr log), with extra command
    line ``options``; skips the test where Chromium is not installed."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not on PATH (make system-deps installs it); HTML checked above")
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            *options,
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


@pytest.mark.parametrize("which", ["drive", "eval", "compare"])
def test_report_renders_in_chromium(
    which: str, drive_dir: Path, eval_dir: Path, tmp_path: Path
) -> None:
    inputs = {"drive": [drive_dir], "eval": [eval_dir], "compare": [eval_dir, drive_dir]}[which]
    page = write_report(inputs, tmp_path / f"{which}.html")
    source = _parse(page.read_text())
    dumped, log = _chromium_dom(page)
    dom = _parse(dumped)
    ready = dom.find("div", id="kaido-report-ready")
    assert ready, "the page's script did not run to the end"
    assert not dom.find("div", id="kaido-report-error"), dom.find("div", id="kaido-report-error")
    assert "Uncaught" not in log
    n_plots = len(source.find("svg"))
    n_videos = len(source.find("video"))
    assert n_plots >= 4 and n_videos >= 1
    assert ready[0]["data-plots"] == str(n_plots)
    assert ready[0]["data-videos"] == str(n_videos)
    assert dom.find("table", id="summary")
    assert _plot_ids(dom) == _plot_ids(source)


def test_svg_lines_break_at_nan_and_scale_to_the_box() -> None:
    from kaido.tools.report import svg_lines

    t = np.arange(6, dtype=np.float64)
    y = np.array([0.0, 1.0, np.nan, 3.0, 4.0, 5.0])
    svg = svg_lines("x", "x", {"y": (t, y)}, "m")
    path = next(a["d"] for tag, a in _parse(svg).tags if tag == "path")
    moves = str(path).split()
    assert [m[0] for m in moves] == ["M", "L", "M", "L", "L"]
    xs = [float(m[1:].split(",")[0]) for m in moves]
    ys = [float(m[1:].split(",")[1]) for m in moves]
    assert min(xs) == pytest.approx(56.0) and max(xs) == pytest.approx(640 - 16)
    assert max(ys) == pytest.approx(240 - 40) and min(ys) == pytest.approx(24.0)
