"""Checks of the contract between stacks (exports, stack references, the stack graph)."""

from __future__ import annotations

import re
from pathlib import Path

from ..exports import EXPORTS, UPSTREAMS
from .runner import INFRA_DIR, StackRun

STACK_REF_CALL = re.compile(r"""stack_ref\(\s*["']([a-z]+)["']\s*\)""")


def stack_ref_literals(stack: str) -> set[str]:
    """Upstream names passed as literals to stack_ref(...) anywhere in infra/<stack>/**/*.py
    (the same check the build tool makes to derive the stack graph)."""
    found: set[str] = set()
    for path in sorted((INFRA_DIR / stack).rglob("*.py")):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        found |= set(STACK_REF_CALL.findall(path.read_text()))
    return found


def contract_problems(run: StackRun) -> list[str]:
    """Every way a mocked run breaks the contract; empty when it keeps it."""
    problems: list[str] = []
    exported, expected = set(run.export_names), set(EXPORTS[run.stack])
    if exported - expected:
        problems.append(f"{run.stack} exports names missing from EXPORTS: {sorted(exported - expected)}")
    if expected - exported:
        problems.append(f"{run.stack} does not export: {sorted(expected - exported)}")
    if run.duplicate_exports:
        problems.append(f"{run.stack} exports twice: {sorted(run.duplicate_exports)}")
    referenced = {ref.split("/")[1].removeprefix("tradai-") for ref in run.stack_references}
    if referenced != set(UPSTREAMS[run.stack]):
        problems.append(f"{run.stack} references stacks {sorted(referenced)}, expected {sorted(UPSTREAMS[run.stack])}")
    for ref in run.stack_references:
        org, project, env = ref.split("/")
        if env != run.env:
            problems.append(f"{run.stack}/{run.env} references another environment's stack: {ref}")
    for read in run.stack_reads:
        upstream = read["stack"].split("/")[1].removeprefix("tradai-")
        if upstream not in EXPORTS or read["output"] not in EXPORTS[upstream]:
            problems.append(f"{run.stack} reads {read['output']!r} from {upstream}, which does not export it")
    return problems


def pulumi_project_files(stack: str) -> dict[str, Path]:
    stack_dir = INFRA_DIR / stack
    return {p.name: p for p in stack_dir.glob("Pulumi*.yaml")}
