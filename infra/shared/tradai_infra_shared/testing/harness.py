"""Run one Pulumi program under mocks, in its own interpreter, and write what it did as JSON.

Usage: ``python -m tradai_infra_shared.testing.harness REQUEST.json RESULT.json``

A fresh interpreter per run gives every run its own Pulumi runtime state, its own
``tradai_infra_shared.config`` (whose ENVIRONMENT is read from the stack at import time)
and its own top-level ``modules`` package, exactly as ``pulumi up`` would run the program
from the stack's directory. Configuration arrives the way the engine passes it: in the
``PULUMI_CONFIG`` environment variable.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from .mocks import TradaiMocks, install_mocks


def _run(request: dict[str, Any]) -> dict[str, Any]:
    stack_dir = Path(request["stack_dir"])
    os.chdir(stack_dir)
    mocks = TradaiMocks(request.get("upstream_outputs", {}))
    install_mocks(mocks, project=request["project"], stack=request["env"])

    exports: dict[str, Any] = {}
    duplicate_exports: list[str] = []
    reads: list[dict[str, str]] = []

    def record_export(name: str, value: Any = None) -> None:
        if name in exports:
            duplicate_exports.append(name)
        exports[name] = value

    pulumi.export = record_export  # type: ignore[assignment]

    base_get = pulumi.StackReference.get_output
    base_require = pulumi.StackReference.require_output

    def get_output(self: pulumi.StackReference, name: Any) -> pulumi.Output[Any]:
        reads.append({"stack": self._name, "output": str(name)})
        return base_get(self, name)

    def require_output(self: pulumi.StackReference, name: Any) -> pulumi.Output[Any]:
        reads.append({"stack": self._name, "output": str(name)})
        return base_require(self, name)

    pulumi.StackReference.get_output = get_output  # type: ignore[method-assign]
    pulumi.StackReference.require_output = require_output  # type: ignore[method-assign]

    resolved: dict[str, Any] = {}

    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(stack_dir), run_name="__main__")
        outputs = {name: pulumi.Output.from_input(value) for name, value in exports.items()}
        return pulumi.Output.all(**outputs).apply(resolved.update) if outputs else pulumi.Output.from_input(None)

    result: dict[str, Any] = {"ok": True, "error": None}
    try:
        _sync_await(run_pulumi_func(lambda: _sync_await(pulumi.Output.from_input(program()).future())))
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which decides
        result = {
            "ok": False,
            "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
            "traceback": traceback.format_exc(),
        }
    result.update(
        resources=mocks.resources,
        stack_references=mocks.stack_references,
        stack_reads=reads,
        export_names=list(exports),
        duplicate_exports=duplicate_exports,
        exports=resolved,
    )
    return result


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[1]).read_text())
    result = _run(request)
    Path(argv[2]).write_text(json.dumps(result, default=repr, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
