"""The docs stay true: README.md and docs/ link only to files and headings that exist, the guide's index lists every
page, each guide page starts with an example, and the README's recipes run — or, where a recipe is too slow to run
here, every `lcsc` command in it parses with the real command line and uses only flags its `--help` lists.

Code blocks preceded by ``<!-- doc-test: run -->`` are executed (in a temporary folder). Every other ```bash block of
README.md and docs/guide/ has each `lcsc …` command's flags checked against that subcommand's parser and help text;
the recipes' and each guide page's first block must also parse as a whole. ```python blocks are compiled and every
``from lcsc… import X`` is imported.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"
MD_FILES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
GUIDE_PAGES = sorted(p for p in GUIDE.glob("*.md") if p.name != "README.md")
CODE_DOCS = [README, *sorted(GUIDE.glob("*.md"))]  # where commands and code are checked
README_MAX_LINES = 250
FIRST_BLOCK_WITHIN = 15  # lines: "each page starts with a runnable example"
RUN_MARK = "<!-- doc-test: run -->"
RECIPES_HEADING = "## Recipes"

FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---------------------------------------------------------------------------------------------------------------
# Markdown parsing: prose lines (fenced code blanked), headings and their GitHub anchors, fenced code blocks.


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    section: str  # the nearest "## " heading above it ("" before the first)
    run: bool  # marked with RUN_MARK


def split_markdown(path: Path) -> tuple[list[str], list[Block]]:
    """The file's lines with fenced code (fences included) blanked, and its fenced code blocks."""
    prose, blocks = [], []
    fence, start, lang, body, section, marked = None, 0, "", [], "", False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence, start, lang, body = m.group(1), i, m.group(2).lower(), []
            prose.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                blocks.append(Block(path, start, lang, "\n".join(body), section, marked))
                fence, marked = None, False
            else:
                body.append(line)
            prose.append("")
            continue
        if line.startswith("## "):
            section = line.strip()
        if line.strip():
            marked = line.strip() == RUN_MARK
        prose.append(line)
    assert fence is None, f"{rel(path)}: code block opened at line {start} is never closed"
    return prose, blocks


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: the rendered text, lowercased, punctuation removed, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links → their text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()  # inline HTML
    text = re.sub(r"[^\w\- ]", "", text)  # keeps letters (any script), digits, '_', '-', ' '
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    prose, _ = split_markdown(path)
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose:
        out.update(re.findall(r"""<a\s+(?:name|id)=["']([^"']+)["']""", line))
        m = HEADING.match(line)
        if m:
            slug = github_slug(m.group(2))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links_of(path: Path) -> list[tuple[int, str]]:
    prose, _ = split_markdown(path)
    out = []
    for i, line in enumerate(prose, 1):
        text = re.sub(r"`[^`]*`", "", line)  # code spans are not links
        for pattern in (INLINE_LINK, REF_LINK, HTML_LINK):
            out.extend((i, m.group(1)) for m in pattern.finditer(text))
    return out


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][\w+.-]*:", target)) or target.startswith("//")


def uncommitted(md: Path, target: str) -> bool:
    """The demo report links the model files it wrote; they stay in the run folder (docs/demo/models/README.md keeps
    their coefficient files and the commands that rebuild them), so those links are expected not to resolve here."""
    return md == ROOT / "docs" / "demo" / "report.md" and re.fullmatch(r"models/[\w.-]+\.safetensors", target)


# ---------------------------------------------------------------------------------------------------------------
# 1. Links and anchors


@pytest.mark.parametrize("md", MD_FILES, ids=rel)
def test_relative_links_resolve(md: Path):
    broken = []
    anchor_cache: dict[Path, set[str]] = {}
    for line, target in links_of(md):
        if is_external(target) or uncommitted(md, target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (md.parent / file_part).resolve() if file_part else md
        if not dest.exists():
            broken.append(f"{rel(md)}:{line}: {target} → no such file {dest}")
            continue
        if anchor and dest.suffix == ".md":
            if dest not in anchor_cache:
                anchor_cache[dest] = anchors_of(dest)
            if anchor not in anchor_cache[dest]:
                broken.append(f"{rel(md)}:{line}: {target} → {dest.name} has no heading with anchor #{anchor}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_guide_index_links_every_page():
    index = GUIDE / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for _, t in links_of(index) if not is_external(t)}
    missing = [rel(p) for p in GUIDE_PAGES if p.resolve() not in linked]
    assert GUIDE_PAGES, "docs/guide has no pages"
    assert not missing, f"docs/guide/README.md does not link these pages: {missing}"
    readme_links = {(ROOT / t.partition("#")[0]).resolve() for _, t in links_of(README) if not is_external(t)}
    assert index.resolve() in readme_links, "README.md does not link the guide's index docs/guide/README.md"


# ---------------------------------------------------------------------------------------------------------------
# 2. Shape: README length and top, guide pages start with an example, the headline table is the demo page's


def test_readme_is_short_and_keeps_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    _, blocks = split_markdown(README)
    first = blocks[0]
    assert first.section == "## Two commands", "the README's first code block must be the two commands"
    commands = [ln.split("#")[0].strip() for ln in first.code.splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"], commands
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text(), "CI must run the README's test command"


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=rel)
def test_guide_page_starts_with_an_example(page: Path):
    prose, blocks = split_markdown(page)
    assert blocks, f"{rel(page)} has no code block"
    first = blocks[0]
    assert first.line <= FIRST_BLOCK_WITHIN, (
        f"{rel(page)}: the first example opens at line {first.line}; it must come right after the title and the "
        f"one-sentence intro (within {FIRST_BLOCK_WITHIN} lines)")
    assert first.lang in ("bash", "python"), f"{rel(page)}: the first block is ```{first.lang}, not bash or python"
    headings = [ln for ln in prose[: first.line - 1] if HEADING.match(ln)]
    assert len(headings) == 1 and headings[0].startswith("# "), f"{rel(page)}: only the title may precede the example"


def _table_after(path: Path, caption: str) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, ln in enumerate(lines) if caption in ln)
    first_row = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first_row, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[first_row:end]


def test_headline_table_matches_the_demo_page():
    caption = "Results on the report seeds 3, 4 and 5"
    readme, demo = _table_after(README, caption), _table_after(GUIDE / "demo.md", caption)
    assert len(readme) >= 3
    assert readme == demo, "the README's headline table differs from docs/guide/demo.md's"


# ---------------------------------------------------------------------------------------------------------------
# 3. Commands: every `lcsc …` flag exists; recipes and first blocks parse; scripts exist; python compiles and imports


@pytest.fixture(scope="module")
def cli() -> argparse.ArgumentParser:
    from lcsc.cli.main import build_parser

    return build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def shell_commands(code: str) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments and VAR=value prefixes dropped."""
    logical, pending = [], ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    out = []
    for line in logical:
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0]):
            words = words[1:]
        if words[:3] in ([sys.executable, "-m", "lcsc"], ["python", "-m", "lcsc"]):
            words = ["lcsc", *words[3:]]
        if words:
            out.append(words)
    return out


def check_command(cli: argparse.ArgumentParser, words: list[str], where: str, *, strict: bool) -> list[str]:
    """Problems with one command: an unknown subcommand, a flag its parser and --help do not know, a script that does
    not exist or lacks the flag; with ``strict``, any argument the real parser refuses."""
    if words[0] == "lcsc":
        parser, path = cli, ["lcsc"]
        for word in words[1:]:
            choices = _subparsers(parser)
            if word not in choices:
                break
            parser, path = choices[word], [*path, word]
        if _subparsers(parser) and strict and "--help" not in words:
            return [f"{where}: `{shlex.join(words)}`: no subcommand of `{' '.join(path)}`"]
        help_text = parser.format_help()
        problems = []
        for flag in sorted({f for w in words[len(path):] for f in FLAG.findall(w)}):
            in_help = re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text)
            if flag not in parser._option_string_actions or not in_help:
                problems.append(f"{where}: `{' '.join(path)}` has no option {flag} (see {' '.join(path)} --help)")
        if strict and not problems:
            err = io.StringIO()
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                    cli.parse_args(words[1:])
            except SystemExit as exc:
                if exc.code not in (0, None):
                    problems.append(f"{where}: `{shlex.join(words)}` does not parse: {err.getvalue().strip()}")
        return problems
    script = next((w for w in words[1:3] if re.search(r"\.(py|sh)$", w)), None)
    if words[0] in ("python", "python3", "bash") and script:
        target = ROOT / script
        if not target.is_file():
            return [f"{where}: `{shlex.join(words)}`: no such script {script}"]
        text = target.read_text(encoding="utf-8")
        return [f"{where}: {script} has no option {flag}" for w in words[2:] for flag in FLAG.findall(w)
                if f'"{flag}"' not in text and f"'{flag}'" not in text]
    return []


def _bash_blocks(md: Path) -> list[Block]:
    return [b for b in split_markdown(md)[1] if b.lang in ("bash", "sh", "shell", "console")]


@pytest.mark.parametrize("md", CODE_DOCS, ids=rel)
def test_lcsc_commands_use_real_flags(cli, md: Path):
    problems = []
    for block in _bash_blocks(md):
        for words in shell_commands(block.code):
            problems += check_command(cli, words, f"{rel(md)}:{block.line}", strict=False)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=rel)
def test_guide_first_example_parses(cli, page: Path):
    first = split_markdown(page)[1][0]
    problems = []
    if first.lang == "bash":
        commands = shell_commands(first.code)
        assert commands, f"{rel(page)}:{first.line}: the first example has no command"
        for words in commands:
            problems += check_command(cli, words, f"{rel(page)}:{first.line}", strict=True)
    assert not problems, "\n".join(problems)


def recipe_sections() -> dict[str, list[Block]]:
    """The README's recipes: every "### " subsection of "## Recipes" and its code blocks."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(RECIPES_HEADING)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    _, blocks = split_markdown(README)
    sections: dict[str, list[Block]] = {}
    current = None
    for i in range(start, end):
        if lines[i].startswith("### "):
            current = lines[i][4:].strip()
            sections[current] = []
    for block in blocks:
        if start < block.line <= end:
            title = next(lines[i][4:].strip() for i in range(block.line - 1, start, -1) if lines[i].startswith("### "))
            sections[title].append(block)
    return sections


RECIPES = recipe_sections()


def test_readme_has_three_recipes():
    assert len(RECIPES) >= 3, f"README.md: expected three recipes under {RECIPES_HEADING!r}, found {list(RECIPES)}"
    assert all(RECIPES.values()), f"a recipe without code: {[k for k, v in RECIPES.items() if not v]}"
    assert any(b.run for blocks in RECIPES.values() for b in blocks), "no recipe is marked to run"


@pytest.mark.parametrize("title", list(RECIPES), ids=github_slug)
def test_recipe_commands_parse(cli, title: str):
    problems = []
    for block in RECIPES[title]:
        if block.lang == "bash":
            for words in shell_commands(block.code):
                problems += check_command(cli, words, f"README.md:{block.line}", strict=True)
    assert not problems, "\n".join(problems)


def python_blocks() -> list[Block]:
    return [b for md in CODE_DOCS for b in split_markdown(md)[1] if b.lang == "python"]


@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: f"{rel(b.path)}:{b.line}")
def test_python_block_compiles_and_imports(block: Block):
    where = f"{rel(block.path)}:{block.line}"
    tree = ast.parse(block.code, filename=where)  # a SyntaxError names the block
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lcsc":
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    continue
                try:  # a submodule: `from lcsc.merge import lora`
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    pytest.fail(f"{where}: `from {node.module} import {alias.name}`: {node.module} has no {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "lcsc":
                    importlib.import_module(alias.name)


def marked_blocks() -> list[Block]:
    return [b for md in CODE_DOCS for b in split_markdown(md)[1] if b.run]


@pytest.mark.parametrize("block", marked_blocks(), ids=lambda b: f"{rel(b.path)}:{b.line}")
def test_marked_examples_run(block: Block, tmp_path, monkeypatch):
    assert block.lang == "python", f"{rel(block.path)}:{block.line}: only python blocks are run in-process"
    monkeypatch.chdir(tmp_path)
    code = compile(block.code, f"{rel(block.path)}:{block.line}", "exec")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exec(code, {"__name__": "__doc_example__"})


def test_python_m_lcsc_lists_every_documented_subcommand():
    """One real start-up of the entry point (`python -m lcsc --help`): every subcommand the docs use is in it."""
    used = set()
    for md in CODE_DOCS:
        for block in _bash_blocks(md):
            used.update(w[1] for w in shell_commands(block.code) if w[0] == "lcsc" and len(w) > 1
                        and re.fullmatch(r"[a-z][a-z-]*", w[1]))
    result = subprocess.run([sys.executable, "-m", "lcsc", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    missing = sorted(c for c in used if not re.search(rf"\b{re.escape(c)}\b", result.stdout))
    assert not missing, f"subcommands used in the docs but not in `lcsc --help`: {missing}"
