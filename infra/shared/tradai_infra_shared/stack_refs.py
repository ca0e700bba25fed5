"""The one way a stack reads another stack's outputs."""

from __future__ import annotations

from typing import Any

import pulumi

from . import config
from .exports import EXPORTS, UPSTREAMS

DEFAULT_ORG = "organization"  # the organization name of Pulumi's file/S3 ("DIY") backends


class TradaiStackReference(pulumi.StackReference):
    """A StackReference that only hands out outputs its upstream stack exports."""

    def __init__(self, upstream: str, stack_name: str) -> None:
        super().__init__(stack_name)
        self.upstream = upstream

    def _check(self, name: Any) -> None:
        if isinstance(name, str) and name not in EXPORTS[self.upstream]:
            raise KeyError(
                f"stack {self.upstream!r} does not export {name!r}; exported outputs are "
                f"listed in tradai_infra_shared.exports.EXPORTS[{self.upstream!r}]"
            )

    def get_output(self, name: pulumi.Input[str]) -> pulumi.Output[Any]:
        self._check(name)
        return super().get_output(name)

    def require_output(self, name: pulumi.Input[str]) -> pulumi.Output[Any]:
        self._check(name)
        return super().require_output(name)


def stack_ref(stack: str) -> pulumi.StackReference:
    """Reference an upstream stack of the same environment.

    Called with the upstream's short name (for example "foundation"), it returns
    ``StackReference("<org>/tradai-foundation/<env>")``; ``<org>`` comes from config
    ``tradai:org`` (default ``organization``).
    """
    if stack not in EXPORTS:
        raise ValueError(f"unknown stack {stack!r}: expected one of {', '.join(EXPORTS)}")
    current = pulumi.get_project()
    if current.startswith(f"{config.PROJECT_NAME}-"):
        me = current.removeprefix(f"{config.PROJECT_NAME}-")
        if me in UPSTREAMS and stack not in UPSTREAMS[me]:
            raise ValueError(
                f"{current} may not read stack {stack!r}; its upstreams are "
                f"{', '.join(UPSTREAMS[me]) or 'none'} (tradai_infra_shared.exports.UPSTREAMS)"
            )
    org = pulumi.Config("tradai").get("org") or DEFAULT_ORG
    env = pulumi.get_stack()
    return TradaiStackReference(stack, f"{org}/{config.get_stack_project_name(stack)}/{env}")
