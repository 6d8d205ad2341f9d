"""The library's imports run one way (README, "Architecture"): this table is the rule, and the code
is checked against it. Every import counts, also one inside a function or under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bertlab"

# module -> the bertlab modules it may import. Read from the bottom up: each row may use only rows
# above it. `bertlab` is the package itself (its __init__), `data` the data package's __init__.
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "metrics": set(),
    "positional": set(),
    "data.seeding": set(),
    "config": {"common"},
    "plots": {"metrics"},
    "data.tables": {"common"},
    "data.classification": {"common", "data.tables"},
    "data.corpus": {"common", "data.classification", "data.seeding", "data.tables"},  # 'reviews': RT's train split
    "attention": {"config"},
    "checkpoint": {"common", "config"},
    "fast": {"attention"},
    "model": {"attention", "checkpoint", "common", "config", "fast", "positional"},
    "tokenizer": {"checkpoint", "common"},
    "data.pretraining": {"data.seeding", "tokenizer"},
    "data.source": {"common", "data.classification"},
    "data": {"data.classification", "data.corpus", "data.pretraining", "data.source", "data.tables"},
    "train": {"checkpoint", "common", "config"},
    "encoding": {"common", "tokenizer"},
    "predict": {"common", "data.classification", "encoding", "model", "tokenizer"},
    "report": {"common", "metrics", "plots"},
    "pretrain": {"common", "config", "data", "model", "plots", "tokenizer", "train"},
    "finetune": {"checkpoint", "common", "config", "data.classification", "data.source", "encoding", "metrics",
                 "model", "plots", "predict", "tokenizer", "train"},
    "evaluate": {"common", "data.classification", "data.source", "encoding", "metrics", "predict", "report"},
    "baseline": {"common", "data.classification", "evaluate", "metrics", "report"},
    "bench": {"bertlab", "common", "config", "data", "fast", "model", "tokenizer", "train"},
    "book": {"train"},
    "bertlab": {"checkpoint", "common", "config", "model", "tokenizer"},
    "cli": {"bertlab", "baseline", "bench", "common", "config", "evaluate", "finetune", "model", "predict",
            "pretrain", "tokenizer"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "bertlab"


def is_module(name: str) -> bool:
    if name == "bertlab":
        return True
    base = PACKAGE.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every bertlab import in the file."""
    here = module_name(path)
    package = here.split(".")[:-1] if path.name != "__init__.py" else here.split(".")
    if here == "bertlab":
        package = []
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + (node.module.split(".") if node.module else []))
            elif node.module and (node.module == "bertlab" or node.module.startswith("bertlab.")):
                target = node.module[len("bertlab."):] if node.module != "bertlab" else ""
            else:
                continue
            names = [a.name for a in node.names]
            if not node.module:  # from . import x: x may be a module
                for n in names:
                    sub = f"{target}.{n}" if target else n
                    found.append((sub if is_module(sub) else (target or "bertlab"), [n], node.lineno))
                continue
            found.append((target or "bertlab", names, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "bertlab" or a.name.startswith("bertlab."):
                    found.append((a.name[len("bertlab."):] if a.name != "bertlab" else "bertlab", [], node.lineno))
    return found


def graph() -> dict[str, dict[str, list[tuple[list[str], int]]]]:
    out: dict[str, dict[str, list[tuple[list[str], int]]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        edges = out.setdefault(here, {})
        for target, names, line in imports(path):
            if target != here:
                edges.setdefault(target, []).append((names, line))
    return out


def test_every_module_is_in_the_table():
    assert sorted(graph()) == sorted(ALLOWED), "add the new module to ALLOWED (and to the README's architecture)"


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_imports_follow_the_table(module):
    edges = graph().get(module, {})
    extra = {t: [line for _, line in uses] for t, uses in edges.items() if t not in ALLOWED[module]}
    assert not extra, f"bertlab/{module}: imports not in the table: {extra}"


def test_the_table_has_no_cycle():
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for t in sorted(ALLOWED.get(m, ())):
            visit(t, path + [m])
        state[m] = 2

    for m in sorted(ALLOWED):
        visit(m, [])


def test_no_private_name_crosses_a_module():
    bad = [f"bertlab/{m}: line {line} imports {n} from {t}"
           for m, edges in graph().items() for t, uses in edges.items() for names, line in uses
           for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_imports_inside_functions():
    # cli.py imports bertlab.pretrain only inside cmd_pretrain; a checker that missed it would pass anything
    assert "pretrain" in graph()["cli"]
