"""stack_ref: the only way stacks read each other."""

from __future__ import annotations

import pulumi
import pytest

from tradai_infra_shared.stack_refs import TradaiStackReference, stack_ref


def test_stack_ref_refuses_unknown_stacks() -> None:
    unknown = "network"
    with pytest.raises(ValueError, match="unknown stack"):
        stack_ref(unknown)


@pulumi.runtime.test
def test_stack_ref_names_the_org_project_and_environment():
    upstream = "persistent"
    ref = stack_ref(upstream)
    assert isinstance(ref, pulumi.StackReference) and isinstance(ref, TradaiStackReference)
    with pytest.raises(KeyError, match="does not export"):
        ref.get_output("vpc_id")
    return ref.name.apply(lambda name: name == "organization/tradai-persistent/dev" or pytest.fail(name))
