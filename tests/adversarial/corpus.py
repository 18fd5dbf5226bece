"""The adversarial corpus: candidates that cheat, each with the verdict it must get.

Each file in cases/ opens with comment lines: `# attack:` what it tries, `# task:` the reference
it is judged against, `# expect:` its verdict with every layer on, `# expect-runtime:` its verdict
with the static checks off (the runtime guards, comparisons and sandbox alone), and optionally
`# strict: true` and `# time-limit: SECONDS`. A verdict is a status, `rejected/RULE` naming the
rule that must fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CASES = Path(__file__).parent / "cases"
TASKS = {
    "relu": Path(__file__).parent.parent / "evaluators" / "candidates" / "relu_reference.py",
    "matmul": Path(__file__).parent.parent / "evaluators" / "candidates" / "matmul_reference.py",
}


@dataclass(frozen=True)
class Case:
    name: str
    attack: str
    task: Path
    expect: str
    expect_runtime: str
    strict: bool
    time_limit_s: float
    source: str

    @staticmethod
    def load(path: Path) -> Case:
        header: dict[str, str] = {}
        source = path.read_text()
        for line in source.splitlines():
            if not line.startswith("# "):
                break
            key, _, value = line[2:].partition(":")
            header[key.strip()] = value.strip()
        missing = {"attack", "task", "expect", "expect-runtime"} - set(header)
        if missing:
            raise ValueError(f"{path.name}: the header lacks {', '.join(sorted(missing))}")
        return Case(
            name=path.stem,
            attack=header["attack"],
            task=TASKS[header["task"]],
            expect=header["expect"],
            expect_runtime=header["expect-runtime"],
            strict=header.get("strict", "false") == "true",
            time_limit_s=float(header.get("time-limit", "30")),
            source=source,
        )


def load_corpus() -> list[Case]:
    return [Case.load(path) for path in sorted(CASES.glob("*.py"))]


def verdict(status: str, rule: str | None) -> str:
    """`incorrect`, or `rejected/RULE`: what a case's header states."""
    return f"{status}/{rule}" if status == "rejected" else status
