"""``rank_pattern`` / ``alpha_pattern`` keys that every supported peft release resolves to exactly one module.

peft gives a module (named as in the base model, e.g. ``blocks.0.attn.to_q``) the value of the first key whose
regex matches its name, else of the key equal to its name, else the default ``r`` / ``lora_alpha``. The regex
changed in March 2025 (peft PR #2419):

* the legacy rule, from peft 0.10 (the oldest release lcsc supports) until that change:
  ``re.match(rf".*\\.{key}$", name)``: the key must follow a dot, so ``^name`` never matches and a top-level name
  matches only by the exact-name lookup;
* the current rule: ``re.match(rf"(.*\\.)?({key})$", name)``, where ``^`` anchors work.

The keys written here work under both rules and never select another module:

* a nested name ``P.L`` becomes ``(?<=^P\\.)L`` (both parts escaped): its last part, preceded by exactly ``P.`` from
  the start of the name, so neither ``x.P.L`` nor ``xP.L`` match;
* a top-level name ``L`` stays ``L``, for the old rule's exact-name lookup. Both rules also match ``L`` against any
  ``X.L``; each such adapted module gets its own nested key, placed before every top-level key.

:func:`pattern_keys` checks the result under both rules and raises when a module name defeats it (a top-level name
with regex characters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lcsc.errors import CheckpointError

__all__ = ["pattern_keys", "peft_pattern_value"]


def _legacy_match(key: str, name: str) -> bool:
    return re.match(rf".*\.{key}$", name) is not None


def _current_match(key: str, name: str) -> bool:
    return re.match(rf"(.*\.)?({key})$", name) is not None


def peft_pattern_value(patterns: Mapping[str, Any], name: str, default: Any, *, legacy: bool = False) -> Any:
    """The value peft takes for module ``name`` from ``patterns`` (``legacy``: the rule before March 2025)."""
    match = _legacy_match if legacy else _current_match
    key = next((k for k in patterns if match(k, name)), name)
    return patterns.get(key, default)


def _nested_key(name: str) -> str:
    parent, leaf = name.rsplit(".", 1)
    return f"(?<=^{re.escape(parent)}\\.){re.escape(leaf)}"


def pattern_keys(ranks: Mapping[str, int], default: int) -> dict[str, int]:
    """``{key: rank}`` giving each module of ``ranks`` its rank under every peft release, the others ``default``.

    Raises :class:`CheckpointError` naming a module no key form can select alone under both rules.
    """
    top = {n: k for n, k in ranks.items() if "." not in n and k != default}
    keys = {}
    for name, rank in ranks.items():
        if "." in name and (rank != default or name.rsplit(".", 1)[1] in top):
            keys[_nested_key(name)] = rank
    keys.update(top)
    for name, rank in ranks.items():
        for legacy in (True, False):
            try:
                got = peft_pattern_value(keys, name, default, legacy=legacy)
            except re.error as exc:
                got = f"an invalid pattern ({exc})"
            if got != rank:
                rule = "the legacy peft rule" if legacy else "the current peft rule"
                raise CheckpointError(f"module {name!r}: no rank_pattern key selects it alone under {rule} (it would "
                                      f"get {got}, not rank {rank}): top-level module names with regex characters "
                                      f"({', '.join(sorted(top))}) cannot be keyed for every peft release")
    return keys
