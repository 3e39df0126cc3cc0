"""report.html holds every table (and image) of report.md: the demo's report writer on a small fabricated result
(figures skipped: they need trained models)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lcsc.demo import report
from lcsc.demo.run import MODEL_LABELS, DemoRow
from lcsc.experiment.config import DemoConfig
from lcsc.experiment.headlines import nfe_match, speedup
from lcsc.experiment.scoring import HeldOutScore


def _score(fd: float) -> HeldOutScore:
    return HeldOutScore(fd_mean=fd, fd_std=0.1, fd2_mean=fd / 10, fd2_std=0.01, kid=0.002, precision=0.7, recall=0.6,
                        fd_per_seed=(fd - 0.1, fd + 0.1), fd3_mean=fd / 20, fd3_std=0.01, fd4_mean=fd / 30,
                        fd4_std=0.01)


def _rows(label: str, cfg: DemoConfig, nfe: int, nfes: tuple[int, ...]) -> list[DemoRow]:
    """EMA* at every point, EMA at the main points, LCSC (speed-up at the early point), the NFE sweep and the
    anchoring variants at the end of training."""
    early, final, main = cfg.early_point, cfg.iterations, set(cfg.ema_points)
    lcsc_early = DemoRow(label, "LCSC", early, nfe, _score(8.0 - early / 100), "LCSC @ early")
    rows = [lcsc_early, DemoRow(label, "LCSC", final, nfe, _score(1.5), "anchors, guard exported",
                                initial=_score(2.5))]
    rows += [DemoRow(label, "EMA*", p, nfe, _score(9.0 - p / 100), "hl-16", main=p in (early, final))
             for p in cfg.points]
    rows += [DemoRow(label, "EMA", p, nfe, _score(9.5 - p / 100), "hl-6") for p in sorted(main)]
    rows += [DemoRow(label, m, final, n, _score(3.0 + n / 10 + (m == "EMA*")), "sweep", main=False)
             for n in nfes if n != nfe for m in ("EMA*", "LCSC")]
    rows += [DemoRow(label, m, final, nfe, _score(2.0 + i / 10), m, main=False)
             for i, m in enumerate(("LCSC window only", "LCSC shrink 0.5", "LCSC shrink 0.75"))]
    curve = [r.score.__dict__ for r in rows if r.method == "EMA*" and r.nfe == nfe]
    lcsc_early.headline = speedup(list(cfg.points), curve, lcsc_early.score.__dict__, early, 40.0)
    return rows


def _result(cfg: DemoConfig) -> SimpleNamespace:
    runs, searches, rows, match = {}, {}, [], {}
    for name, nfe, nfes in (("dm", cfg.dm_nfe, cfg.dm_nfes), ("cm-ct", cfg.cm_nfe, cfg.cm_nfes)):
        mine = _rows(MODEL_LABELS[name], cfg, nfe, nfes)
        rows += mine
        grid = {"hl-6": 1.2, "hl-16": 1.0, "sigma-0.05": 1.1, "sigma-0.1": 1.3}
        runs[name] = SimpleNamespace(nfe=nfe, ema_scores={p: grid for p in cfg.points},
                                     ema_finalists={p: {"hl-16": 0.98, "sigma-0.05": 1.05} for p in cfg.points})
        merger = SimpleNamespace(steps=[630, 635, 640], G=1, K=4, anchors=[{"name": "EMA* hl-16"}])
        searches[name] = {cfg.iterations: SimpleNamespace(merger=merger,
                                                          result=SimpleNamespace(best=np.array([.2, .3, .4, .1])))}
        ema = sorted((r for r in mine if r.method == "EMA*" and r.iteration == cfg.iterations), key=lambda r: r.nfe)
        lcsc = next(r for r in mine if r.method == "LCSC" and r.iteration == cfg.iterations and r.main)
        match[name] = nfe_match([r.nfe for r in ema], [r.score.__dict__ for r in ema], lcsc.score.__dict__, nfe)
    return SimpleNamespace(config=cfg, rows=rows, runs=runs, searches=searches, nfe_match=match,
                           ema_star={n: {p: "hl-16" for p in cfg.points} for n in runs},
                           interior={n: {p: p != cfg.points[0] for p in cfg.points} for n in runs},
                           stages={"train": 12.0, "search": 30.0}, estimate_s=40.0, estimate_parts={"train": 10.0},
                           other_searches={}, low_nfe_searches={}, models={}, other_method="LCSC Alg. 1")


def _md_tables(md: str) -> list[tuple[tuple[str, ...], int]]:
    """(header cells, body rows) of every Markdown table, headers as a reader sees them (escapes resolved)."""
    lines, out = md.splitlines(), []
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")) and \
                re.fullmatch(r"\|(-+\|)+", lines[i + 1]):
            n = next((j for j in range(i + 2, len(lines)) if not lines[j].startswith("|")), len(lines)) - i - 2
            cells = tuple(re.sub(r"\\(.)", r"\1", c.strip()).replace("**", "") for c in line.strip("|").split("|"))
            out.append((cells, n))
    return out


class _Tables(HTMLParser):
    """Every <table>'s <th> texts and <tbody> row count; every <img> src."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list] = []
        self.images: list[str] = []
        self._th: list[str] | None = None
        self._body = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([[], 0])
        elif tag == "th":
            self._th = []
        elif tag in ("tbody", "thead"):
            self._body = tag == "tbody"
        elif tag == "tr" and self._body:
            self.tables[-1][1] += 1
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag == "th":
            self.tables[-1][0].append("".join(self._th))
            self._th = None
        elif tag == "tbody":
            self._body = False

    def handle_data(self, data):
        if self._th is not None:
            self._th.append(data)


@pytest.fixture
def written(tmp_path: Path, monkeypatch) -> tuple[str, str]:
    monkeypatch.setattr(report, "_figures", lambda *a: {})
    paths = report.write_demo_report(_result(DemoConfig.quick()), tmp_path)
    return paths["md"].read_text(encoding="utf-8"), paths["html"].read_text(encoding="utf-8")


def test_html_holds_every_table_of_the_markdown(written) -> None:
    md, page = written
    parsed = _Tables()
    parsed.feed(page)
    tables = _md_tables(md)
    # main, speed-up, NFE (one per model), EMA / EMA* curve, anchoring (one per model), EMA* grid
    assert len(tables) == 8
    assert [(tuple(h), n) for h, n in parsed.tables] == tables
    headers = {h[:2] for h, _ in tables}
    assert {("Model", "Method"), ("Model", "LCSC iter"), ("DM", "Method"), ("CM (CT)", "Method"),
            ("Model", "Iter"), ("Method", "FD_digits"), ("Model", "Point")} == headers
    assert parsed.images == re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "fd_vs_nfe.png" in parsed.images and len(parsed.images) == 7


def test_html_renders_the_markdowns_emphasis_and_escapes(written) -> None:
    md, page = written
    assert "EMA\\*" in md and "EMA\\*" not in page and "**" not in page
    assert "<h2>EMA* grid on the search noise</h2>" in page and "<strong>DM</strong>" in page
    assert "<td><strong>edge</strong></td>" in page  # the first point is on the grid's edge
    assert page.count("<li>") == md.count("\n- ")
