"""Checks recorded resource inputs against pulumi_aws's own argument definitions.

Pulumi's mocks accept any property; a misspelt nested key (``http_tokenz``) would only fail
against AWS. This walks every recorded input through the resource's ``*Args`` classes.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from .runner import StackRun

_ARGS_REF = re.compile(r"ForwardRef\('([A-Za-z0-9_]+Args)'\)")


def _normalise(name: str) -> str:
    return name.replace("_", "").lower()


def _resource_class(token: str) -> Any:
    import pulumi_aws as aws

    _, module, name = token.split(":")
    package = module.split("/")[0]
    return getattr(getattr(aws, "lambda_" if package == "lambda" else package), name)


def _check(
    params: dict[str, inspect.Parameter], inputs: dict[str, Any], path: str, module: Any, problems: list[str]
) -> None:
    by_name = {_normalise(p): param for p, param in params.items()}
    for key, value in inputs.items():
        param = by_name.get(_normalise(key))
        if param is None:
            problems.append(f"{path}.{key}")
            continue
        refs = _ARGS_REF.findall(str(param.annotation))
        args_class = getattr(module, refs[0], None) if refs else None
        if args_class is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                nested = {k: v for k, v in inspect.signature(args_class.__init__).parameters.items() if k != "__self__"}
                _check(nested, item, f"{path}.{key}", module, problems)


def unknown_input_keys(run: StackRun) -> list[str]:
    """``type.path.key`` for every recorded input key pulumi_aws does not define."""
    problems: list[str] = []
    for resource in run.resources:
        if not resource["type"].startswith("aws:"):
            continue
        cls = _resource_class(resource["type"])
        module = importlib.import_module(cls.__module__.rsplit(".", 1)[0] + "._inputs")
        params = dict(inspect.signature(cls._internal_init).parameters)
        _check(params, resource["inputs"], f"{resource['type']}({resource['name']})", module, problems)
    return sorted(set(problems))
