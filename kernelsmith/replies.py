"""Turning an LLM reply into a candidate: fenced code, or SEARCH/REPLACE blocks applied to a parent.

A reply that cannot be used raises `ReplyError` saying why (no code block, a syntax error and its
line, no ModelNew, a SEARCH text that is not in the parent and the closest line that is).
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass

FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
SEARCH_MARK = re.compile(r"^[ \t]*<{5,}[ \t]*SEARCH[ \t]*$")
DIVIDER_MARK = re.compile(r"^[ \t]*={5,}[ \t]*$")
REPLACE_MARK = re.compile(r"^[ \t]*>{5,}[ \t]*REPLACE[ \t]*$")
PYTHON_TAGS = {"", "python", "py", "python3"}


class ReplyError(ValueError):
    """A reply (or a diff in it) that cannot become a candidate, with the reason."""


@dataclass(frozen=True)
class DiffBlock:
    search: str
    replace: str
    index: int  # 1-based, as the reply numbers them for people


def check_program(source: str, where: str = "the code") -> str:
    """Return `source` if it parses and defines ModelNew at module level, else say why not."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        line = (error.text or "").rstrip("\n")
        shown = f": `{line.strip()}`" if line.strip() else ""
        raise ReplyError(f"{where} does not parse: line {error.lineno}: {error.msg}{shown}") from None
    except (ValueError, MemoryError, RecursionError) as error:  # lone surrogates, absurd nesting
        raise ReplyError(f"{where} does not parse: {type(error).__name__}: {str(error)[:200]}") from None
    if not any(isinstance(node, ast.ClassDef) and node.name == "ModelNew" for node in tree.body):
        raise ReplyError(f"{where} defines no class ModelNew at module level")
    return source


def code_blocks(reply: str) -> list[str]:
    """The Python (or untagged) fenced blocks of a reply, in order."""
    return [match.group(2) for match in FENCE.finditer(reply) if match.group(1).lower() in PYTHON_TAGS]


def extract_program(reply: str) -> str:
    """The candidate program in a full-rewrite reply.

    With several fenced blocks the last one defining ModelNew wins (replies tend to end with
    their final version); a reply without fences is taken whole if it is a program by itself.
    """
    blocks = code_blocks(reply)
    if not blocks:
        if "class ModelNew" in reply:
            try:
                return check_program(reply.strip() + "\n")
            except ReplyError:
                pass
        raise ReplyError("the reply has no ```python code block")
    defining = [block for block in blocks if re.search(r"^class\s+ModelNew\b", block, re.MULTILINE)]
    chosen = defining[-1] if defining else blocks[-1]
    where = "the code block" if len(blocks) == 1 else f"code block {blocks.index(chosen) + 1} of {len(blocks)}"
    return check_program(chosen.rstrip() + "\n", where)


def parse_diff(reply: str) -> list[DiffBlock]:
    """SEARCH/REPLACE blocks of a reply; an unterminated block is an error, not a skip."""
    lines = reply.splitlines()
    blocks: list[DiffBlock] = []
    i = 0
    while i < len(lines):
        if not SEARCH_MARK.match(lines[i]):
            i += 1
            continue
        index = len(blocks) + 1
        divider = _find(lines, DIVIDER_MARK, i + 1, stop=SEARCH_MARK)
        if divider is None:
            raise ReplyError(f"diff block {index} (reply line {i + 1}) has no '=======' after its SEARCH text")
        end = _find(lines, REPLACE_MARK, divider + 1, stop=SEARCH_MARK)
        if end is None:
            raise ReplyError(f"diff block {index} (reply line {i + 1}) is not closed by '>>>>>>> REPLACE'")
        blocks.append(DiffBlock("\n".join(lines[i + 1 : divider]), "\n".join(lines[divider + 1 : end]), index))
        i = end + 1
    return blocks


def _find(lines: list[str], mark: re.Pattern[str], start: int, stop: re.Pattern[str]) -> int | None:
    for j in range(start, len(lines)):
        if mark.match(lines[j]):
            return j
        if stop.match(lines[j]):
            return None
    return None


def apply_diff(parent: str, blocks: list[DiffBlock]) -> str:
    """Apply every block in order; the first that does not apply fails the whole diff."""
    if not blocks:
        raise ReplyError("the reply has no SEARCH/REPLACE blocks")
    text = parent
    for block in blocks:
        text = apply_block(text, block, total=len(blocks))
    if text == parent:
        raise ReplyError("the diff changes nothing: every REPLACE text equals its SEARCH text")
    return check_program(text, "the code after applying the diff")


def apply_block(text: str, block: DiffBlock, total: int = 1) -> str:
    """Replace the block's SEARCH lines in `text`, tolerating trailing whitespace and a uniform
    indentation shift (the REPLACE lines are shifted by the same amount)."""
    label = f"diff block {block.index} of {total}"
    search = _trim_blank_edges(block.search.splitlines())
    if not search:
        raise ReplyError(f"{label} has an empty SEARCH text: it must quote lines of the parent to replace")
    replace = _trim_blank_edges(block.replace.splitlines())
    lines = text.splitlines()
    found = _locate(lines, search)
    if found is None:
        raise ReplyError(f"{label} does not apply: {_closest(lines, search)}")
    start, shift = found
    new = [_shift(line, shift) for line in replace]
    trailing = "\n" if text.endswith("\n") else ""
    return "\n".join(lines[:start] + new + lines[start + len(search) :]) + trailing


def _locate(lines: list[str], search: list[str]) -> tuple[int, int] | None:
    """(first line, indentation to add to the REPLACE lines) of the first match, or None."""
    wanted = [line.rstrip() for line in search]
    for start in range(len(lines) - len(search) + 1):
        if [line.rstrip() for line in lines[start : start + len(search)]] == wanted:
            return start, 0
    stripped = [line.strip() for line in search]
    for start in range(len(lines) - len(search) + 1):
        window = lines[start : start + len(search)]
        if [line.strip() for line in window] != stripped:
            continue
        shifts = {_indent(have) - _indent(want) for have, want in zip(window, search, strict=True) if want.strip()}
        if len(shifts) == 1:
            return start, shifts.pop()
    return None


def _closest(lines: list[str], search: list[str]) -> str:
    """Say how close the SEARCH text came: the longest matching run, then the first line that differs."""
    stripped = [line.strip() for line in lines]
    wanted = [line.strip() for line in search]
    best_start, best_run = 0, 0
    for start in range(len(lines)):
        run = 0
        while run < len(wanted) and start + run < len(lines) and stripped[start + run] == wanted[run]:
            run += 1
        if run > best_run:
            best_start, best_run = start, run
    if best_run:
        differing = wanted[best_run] if best_run < len(wanted) else ""
        parent_line = best_start + best_run
        have = lines[parent_line].strip() if parent_line < len(lines) else "(end of the parent)"
        matched = (
            f"SEARCH line 1 matches parent line {best_start + 1}" if best_run == 1
            else f"SEARCH lines 1-{best_run} match parent lines {best_start + 1}-{best_start + best_run}"
        )
        return f"{matched}, but SEARCH line {best_run + 1} `{differing}` differs from parent line {parent_line + 1} `{have}`"
    first = next(line for line in wanted if line)
    scored = [(difflib.SequenceMatcher(None, first, line).ratio(), n) for n, line in enumerate(stripped) if line]
    if not scored:
        return f"the parent is empty; SEARCH line 1 is `{first}`"
    ratio, n = max(scored)
    return (
        f"SEARCH line 1 `{first}` is not in the parent; the closest parent line is {n + 1} "
        f"`{stripped[n]}` ({ratio:.0%} similar)"
    )


def _trim_blank_edges(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _shift(line: str, shift: int) -> str:
    if not line.strip() or shift == 0:
        return line.rstrip()
    if shift > 0:
        return " " * shift + line.rstrip()
    expanded = line.expandtabs(4).rstrip()
    return expanded[min(-shift, _indent(expanded)) :]


def parse_diff_reply(parent: str, reply: str) -> tuple[str, str]:
    """A diff reply's child and a short description; a reply holding a whole program instead of
    blocks is taken as a rewrite (said so in the description)."""
    blocks = parse_diff(reply)
    if blocks:
        child = apply_diff(parent, blocks)
        return child, f"{len(blocks)} SEARCH/REPLACE block{'s' if len(blocks) != 1 else ''} applied"
    try:
        child = extract_program(reply)
    except ReplyError as error:
        raise ReplyError(f"the reply has no SEARCH/REPLACE blocks, and no full program either ({error})") from None
    if child.strip() == parent.strip():
        raise ReplyError("the reply has no SEARCH/REPLACE blocks and repeats the parent unchanged")
    return child, "reply held a full program instead of SEARCH/REPLACE blocks; used as a rewrite"
