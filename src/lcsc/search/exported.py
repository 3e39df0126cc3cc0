"""What a search folder exports, read back from its journals alone (no checkpoint, no objective, nothing scored).

An Algorithm 1 (or CMA-ES) folder holds ``journal.jsonl``; its export is what :func:`lcsc.search.run_search` with
``resume=True`` reports as ``result.best``: the validation guard's pick when the journal holds a revalidation record
for the final shortlist, else the best full-count score on the search noise; a journalled shrink of that point
(``--shrink``) is applied exactly as the search applied it. A gradient folder also holds ``gradient.jsonl``; its
export is :func:`lcsc.search.run_gradient_search`'s ``result.best``: the finalists (last iterate, averaged iterate,
best anchor or the start) are rebuilt bit for bit from the journalled state and the guard's validation record names
the pick. An anchored search's coefficient vectors list the window's checkpoints (header ``steps``) first, then the
anchors (header ``anchors``), so K = K_window + anchors.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.checkpoints.reader import checkpoint_interval
from lcsc.errors import ConfigError
from lcsc.merge.coefficients import Coefficients
from lcsc.search.basis import CoefficientSpace
from lcsc.search.evaluator import Candidate, coefficient_hash
from lcsc.search.finish import ANCHOR_PREFIX
from lcsc.search.grad_state import GradState
from lcsc.search.gradient import GRADIENT_JOURNAL, guard_finalists
from lcsc.search.hyperplane import exact_sum_to_one
from lcsc.search.journal import Journal
from lcsc.search.ranking import FULL, best_full, ranked_full

__all__ = ["ExportedCoefficients", "exported_coefficients", "search_candidates", "SEARCH_JOURNAL"]

SEARCH_JOURNAL = "journal.jsonl"
_KEYWORD_ANCHOR = re.compile(r"(ema|ema-start|phema):.+")  # names that are their own anchor spec


@dataclass(frozen=True)
class ExportedCoefficients:
    """A search's exported coefficients and what they are.

    ``coefficients`` is (G, K): the window's ``steps`` first, then ``anchors`` (JSON records with ``name`` and
    ``sha256``, plus ``spec`` / ``kind`` / ``source`` when known). ``kind`` is ``"gradient"`` for a gradient search,
    else the journal's optimiser (``"alg1"``, ``"cmaes"``, ``"sep-cmaes"``). ``score`` is what the search reports as
    ``best_score``: the search-noise score for a journal-only search, the validation score for a gradient search
    (NaN when the guard had none); ``validation_score`` is the guard's score of the export (None without a guard).
    ``index`` is the exported candidate's index in ``journal.jsonl`` (-1 for a gradient iterate)."""

    folder: Path
    kind: str
    steps: tuple[int, ...]
    anchors: tuple[dict[str, Any], ...]
    coefficients: np.ndarray
    name: str | None
    score: float
    direction: str
    index: int
    chosen_by: str
    validation_score: float | None = None
    hashes: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] | None = None
    objective: dict[str, Any] = field(default_factory=dict)

    @property
    def anchored(self) -> bool:
        """Whether the search's stack had anchors (rows after the window)."""
        return bool(self.anchors)

    @property
    def label(self) -> str:
        """``kind`` with ``-anchored`` for an anchored search (e.g. ``alg1-anchored``)."""
        return self.kind + ("-anchored" if self.anchored else "")

    @property
    def K_window(self) -> int:  # noqa: N802
        """The window's checkpoints (the first K_window coefficients of each group)."""
        return len(self.steps)

    @property
    def anchor_names(self) -> list[str]:
        """The anchors' names in row order."""
        return [a["name"] for a in self.anchors]

    @property
    def window(self) -> np.ndarray:
        """(G, K_window): the window checkpoints' coefficients."""
        return self.coefficients[:, : self.K_window]

    @property
    def anchor_part(self) -> np.ndarray:
        """(G, n_anchors): the anchors' coefficients (no columns without anchors)."""
        return self.coefficients[:, self.K_window:]

    def to_coefficients(self) -> Coefficients:
        """The export as the coefficient file format (anchors recorded: ``lcsc merge WINDOW --coeffs FILE`` resolves
        them again from their specs and checks their hashes)."""
        if self.coefficients.shape[0] > 1 and self.groups is None:
            raise ConfigError(f"{self.folder}: per-group coefficients ({self.coefficients.shape[0]} groups) but no "
                              "provenance.json recording the groups; write the coefficient file from the search's "
                              "best_coefficients.json instead")
        values = self.coefficients if self.groups is not None else self.coefficients[0]
        return Coefficients(self.steps, values, self.groups, self.anchors)


def exported_coefficients(path: str | Path) -> ExportedCoefficients:
    """The coefficients the search in ``path`` (a search folder, or its ``journal.jsonl``) exports; a ConfigError
    naming the folder when it is not a search folder or its journals do not fit together."""
    folder = Path(path)
    if folder.is_file() and folder.suffix == ".jsonl":
        folder = folder.parent
    if not (folder / SEARCH_JOURNAL).is_file():
        what = "a gradient journal without its journal.jsonl" if (folder / GRADIENT_JOURNAL).is_file() else \
            "no journal.jsonl"
        raise ConfigError(f"{folder}: not an lcsc search folder ({what}; give a folder written by lcsc search)")
    journal = Journal.load(folder / SEARCH_JOURNAL)
    if journal.header.get("kind") == "gradient":
        raise ConfigError(f"{journal.path}: a gradient journal where the search journal belongs; not an lcsc search "
                          "folder")
    direction = journal.header.get("objective", {}).get("direction") or "minimize"
    candidates = search_candidates(journal)
    if best_full(candidates, direction) is None:
        raise ConfigError(f"{journal.path}: holds no successful full-count evaluation (nothing was exported)")
    if (folder / GRADIENT_JOURNAL).is_file():
        return _gradient(folder, journal, candidates, direction)
    return _journal_only(folder, journal, candidates, direction)


def search_candidates(journal: Journal) -> list[Candidate]:
    """The journal's candidates in index order, each with its coefficients (G, K), search coordinates ``w`` (the
    coefficients in the full space) and its score per stage (None: failed), as the search's evaluator holds them."""
    by_index: dict[int, Candidate] = {}
    for r in journal.records:
        c = by_index.get(r["candidate"])
        if c is None:
            a = np.atleast_2d(np.asarray(r["coefficients"], dtype=np.float64))
            w = np.atleast_2d(np.asarray(r["w"], dtype=np.float64)) if r.get("w") is not None else a
            c = by_index[r["candidate"]] = Candidate(int(r["candidate"]), int(r.get("generation", 0)), w, a,
                                                     r.get("hash") or coefficient_hash(a), r.get("name"))
        c.scores[r.get("stage", FULL)] = r.get("score") if r.get("status") != "failed" else None
    return [by_index[i] for i in sorted(by_index)]


def _base(folder: Path, journal: Journal, K: int) -> dict[str, Any]:
    """The fields every export shares (window steps and anchors checked against the coefficients' length)."""
    header = journal.header
    steps = tuple(int(s) for s in header.get("steps", []))
    anchors = _anchor_records(folder, header.get("anchors") or [])
    if len(steps) + len(anchors) != K:
        raise ConfigError(f"{journal.path}: coefficients of length {K} for {len(steps)} checkpoint steps and "
                          f"{len(anchors)} anchors; the journal is damaged or not an lcsc search journal")
    return {"folder": folder, "steps": steps, "anchors": anchors, "hashes": tuple(header.get("hashes", [])),
            "groups": _groups(folder), "objective": dict(header.get("objective", {}))}


def _journal_only(folder: Path, journal: Journal, cands: list[Candidate], direction: str) -> ExportedCoefficients:
    """Algorithm 1 / CMA-ES: the guard's pick (a revalidation record), else the search-noise best; then shrinkage."""
    best, chosen, val_score = best_full(cands, direction), "search noise", None
    reval = _revalidation(journal, cands, direction)
    if reval is not None and reval.get("picked") is not None:
        best = _by_index(cands, reval["candidates"][reval["picked"]], journal)
        val_score, chosen = reval["scores"][reval["picked"]], "validation guard"
    a, name, score = best.a, best.name, best.scores[FULL]
    shrunk = _shrunk(journal, cands, best)
    if shrunk is not None:
        a, name, score = shrunk
        chosen += " then shrinkage"
    return ExportedCoefficients(kind=str(journal.header.get("config", {}).get("optimizer", "alg1")),
                                coefficients=np.array(a, dtype=np.float64), name=name, score=float(score),
                                direction=direction, index=best.index, chosen_by=chosen, validation_score=val_score,
                                **_base(folder, journal, a.shape[-1]))


def _by_index(cands: list[Candidate], index: int, journal: Journal) -> Candidate:
    """The candidate with journal index ``index`` (a ConfigError naming the journal when there is none)."""
    hit = next((c for c in cands if c.index == index), None)
    if hit is None:
        raise ConfigError(f"{journal.path}: a record names candidate {index}, which the journal does not hold")
    return hit


def _best_anchor(cands: list[Candidate], direction: str) -> Candidate | None:
    """The best scored anchor-alone initial individual (as :func:`lcsc.search.finish.best_anchor`), or None."""
    return best_full((c for c in cands if c.generation == 0 and (c.name or "").startswith(ANCHOR_PREFIX)), direction)


def _revalidation(journal: Journal, cands: list[Candidate], direction: str) -> dict[str, Any] | None:
    """The revalidation record of the journal's final shortlist (the k best distinct individuals, then the best
    anchor when not among them), as a resumed search finds it; the latest record when the journal grew after it."""
    records = [m for m in journal.meta if m["type"] == "revalidation"]
    if not records:
        return None
    distinct = list(dict.fromkeys(c.hash for c in ranked_full(cands, direction)))
    anchor = _best_anchor(cands, direction)
    for rec in reversed(records):
        for k in (len(rec["hashes"]), len(rec["hashes"]) - 1):
            top = distinct[:k]
            if top + ([anchor.hash] if anchor is not None and anchor.hash not in top else []) == rec["hashes"]:
                return rec
    return records[-1]


def _shrunk(journal: Journal, cands: list[Candidate], best: Candidate) -> tuple[np.ndarray, str, float] | None:
    """The journalled shrink of ``best`` (w₀ + λ(w* − w₀), rebuilt as the search built it and checked against the
    recorded hash), or None without one or when the shrunk point failed to score (the search kept the best)."""
    rec = next((m for m in reversed(journal.meta) if m["type"] == "shrink" and m["from_index"] == best.index), None)
    if rec is None or rec.get("score") is None:
        return None
    header, first = journal.header, _by_index(cands, rec["toward_index"], journal)
    G, K = best.a.shape
    n_anchors = len(header.get("anchors") or [])
    interval = header.get("config", {}).get("interval") or checkpoint_interval([int(s) for s in header["steps"]])
    space = CoefficientSpace(header.get("space", {}).get("spec", "full"), K, G, interval, anchors=n_anchors)
    w0, w1 = first.w.reshape(G, space.D), best.w.reshape(G, space.D)
    a = space.to_coefficients(exact_sum_to_one(w0 + rec["lambda"] * (w1 - w0)))
    if coefficient_hash(a) != rec["hash"]:
        raise ConfigError(f"{journal.path}: the shrink record (λ={rec['lambda']:g}) does not reproduce from the "
                          "journal's coefficients; the journal was edited or written by another version")
    return a, f"shrunk λ={rec['lambda']:g} toward {first.name}", float(rec["score"])


def _gradient(folder: Path, journal: Journal, cands: list[Candidate], direction: str) -> ExportedCoefficients:
    """The gradient search's export: its finalists rebuilt from ``gradient.jsonl``, the guard's pick among them."""
    path = folder / GRADIENT_JOURNAL
    grad = Journal.load(path)
    if grad.header.get("kind") != "gradient":
        raise ConfigError(f"{path}: not a gradient search journal (its header has no kind 'gradient')")
    start = best_full(cands, direction)
    G, K = start.a.shape
    a0 = start.a.reshape(G, K)
    if grad.header.get("start") not in (None, coefficient_hash(a0)):
        raise ConfigError(f"{path}: starts from other coefficients than the best initial individual of "
                          f"{journal.path} ({start.name}); the two journals do not belong to one search")
    finalists = _finalists(grad, a0, cands, direction)
    hashes = [coefficient_hash(a) for a in finalists.values()]
    guard = next((m for m in grad.meta if m["type"] == "validation" and m["hashes"] == hashes), None)
    if guard is None:
        why = "its validation records are for other finalists (it went on after its guard, or another lcsc wrote " \
            "them)" if grad.find_meta("validation") else "the search stopped before its guard"
        raise ConfigError(f"{path}: no validation record for the finalists rebuilt from its last step "
                          f"({', '.join(finalists)}): {why}; resume it (lcsc search --resume) to export")
    picked = guard["picked"]
    score = dict(zip(guard["names"], guard["scores"]))[picked]
    return ExportedCoefficients(kind="gradient", coefficients=np.array(finalists[picked]), name=picked,
                                score=math.nan if score is None else float(score), direction=direction, index=-1,
                                chosen_by="gradient guard" if not guard.get("fallback") else "gradient guard fallback",
                                validation_score=score, **_base(folder, journal, K))


def _finalists(grad: Journal, a0: np.ndarray, cands: list[Candidate], direction: str) -> dict[str, np.ndarray]:
    """Last iterate, averaged iterate, then the best anchor (or the start), distinct by content, from the last
    journalled step's state (the state the search ended in)."""
    steps = [m for m in grad.meta if m["type"] == "step"]
    if steps:
        state = GradState.from_json(steps[-1]["state"])
        u, avg_sum, avg_n = state.u, state.avg_sum, state.avg_n
    else:  # stopped (max_time) before its first step: the fresh state
        u, avg_sum, avg_n = np.zeros_like(a0), np.zeros_like(a0), 0
    anchor = _best_anchor(cands, direction)
    if anchor is not None:
        third = (anchor.name or "best anchor", anchor.a.reshape(a0.shape))
    else:
        first = best_full((c for c in cands if c.generation == 0), direction)
        third = (f"start ({None if first is None else first.name})", a0)
    return guard_finalists(a0, u, avg_sum, avg_n, third)


def _provenance(folder: Path) -> dict[str, Any]:
    """``provenance.json`` of a search written by ``lcsc search`` ({} when there is none or it cannot be read)."""
    try:
        card = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def _anchor_records(folder: Path, header: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The header's anchors, completed from ``provenance.json`` (same name and hash) or, for keyword anchors
    (``ema:NAME``, ``ema-start:NAME``, ``phema:S``: their own spec), with ``spec`` = the name."""
    known = {(a.get("name"), a.get("sha256")): a for a in _provenance(folder).get("anchors") or []
             if isinstance(a, dict)}
    out = []
    for a in header:
        rec = {**known.get((a["name"], a["sha256"]), {}), "name": a["name"], "sha256": a["sha256"]}
        if not rec.get("spec") and _KEYWORD_ANCHOR.fullmatch(a["name"]):
            rec["spec"] = a["name"]
        out.append(rec)
    return tuple(out)


def _groups(folder: Path) -> dict[str, tuple[str, ...]] | None:
    """The coefficient groups (name → globs) that ``provenance.json`` records, or None (one group)."""
    groups = _provenance(folder).get("groups")
    return {k: tuple(v) for k, v in groups.items()} if isinstance(groups, dict) and groups else None
