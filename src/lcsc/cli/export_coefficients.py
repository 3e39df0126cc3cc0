"""``python -m lcsc.cli.export_coefficients SEARCH_DIR -o COEFFS.json``: a search's exported coefficients as a
coefficient file (anchors recorded by spec and hash), for ``lcsc merge WINDOW --coeffs COEFFS.json -o FILE``.

Works on plain, anchored and gradient search folders alike (:func:`lcsc.search.exported_coefficients`); the
search need not have written ``best_coefficients.json`` (the demo's searches do not). Bad input ends with one line
on stderr and exit code 2, as the ``lcsc`` commands do."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcsc.errors import LCSCError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lcsc.cli.export_coefficients",
                                description="write a search folder's exported coefficients as a coefficient file")
    p.add_argument("search", type=Path, metavar="SEARCH_DIR", help="a search folder (journal.jsonl)")
    p.add_argument("-o", "--output", type=Path, required=True, help="coefficient file to write (.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Write the coefficient file; prints one line naming the export, or one error line (exit 2)."""
    from lcsc.search import exported_coefficients

    args = _parser().parse_args(argv)
    try:
        ex = exported_coefficients(args.search)
        path = ex.to_coefficients().save(args.output)
    except (LCSCError, OSError) as exc:
        print(f"export_coefficients: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    anchors = f" + anchors {', '.join(ex.anchor_names)}" if ex.anchored else ""
    print(f"{args.search}: {ex.label} export {ex.name or 'best'} ({ex.chosen_by}) over {ex.K_window} checkpoints"
          f"{anchors} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
