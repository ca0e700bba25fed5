"""What survives ``pulumi destroy``: the data protection policy, checked on every stack's
mocked program in every environment by enumerating the registered resources by type."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tradai_infra_shared.config import ENVIRONMENT_SETTINGS, ENVIRONMENTS, STACKS
from tradai_infra_shared.protection import (
    DATA_PROTECTION,
    DATA_RESOURCE_TYPES,
    data_protection,
    data_resource_options,
)
from tradai_infra_shared.testing import run_stack

RDS_INSTANCE = "aws:rds/instance:Instance"


def _parent_type(resource: dict[str, Any]) -> str | None:
    # "urn:pulumi:dev::tradai-persistent::aws:s3/bucket:Bucket::configs-bucket" -> "aws:s3/bucket:Bucket"
    parent = resource["parent"]
    return parent.split("::")[2].split("$")[-1] if parent else None


def _describe(resource: dict[str, Any]) -> str:
    return (
        f"{resource['type']} {resource['name']} "
        f"(protect={resource['protect']}, retain_on_delete={resource['retain_on_delete']})"
    )


def test_every_environment_keeps_its_data_and_prod_keeps_it_twice() -> None:
    assert set(DATA_PROTECTION) == set(ENVIRONMENTS)
    assert all(data_protection(env).survives_destroy for env in ENVIRONMENTS)
    # dev and staging refuse the destroy; prod refuses it and, once unprotected, still retains.
    assert data_protection("dev") == data_protection("staging")
    assert (data_protection("dev").protect, data_protection("dev").retain_on_delete) == (True, False)
    assert (data_protection("prod").protect, data_protection("prod").retain_on_delete) == (True, True)


def test_unknown_environment_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="dev, staging, prod"):
        data_resource_options(env="qa")


def test_options_keep_the_callers_and_the_policy_wins(env: str) -> None:
    ignore = ["tags"]
    opts = data_resource_options(pulumi.ResourceOptions(protect=False, ignore_changes=ignore), env=env)
    assert (opts.protect, opts.retain_on_delete) == (
        DATA_PROTECTION[env].protect,
        DATA_PROTECTION[env].retain_on_delete,
    )
    assert opts.ignore_changes == ignore


@pytest.mark.parametrize("stack", STACKS)
def test_every_data_resource_has_the_environments_protection(stack: str, env: str) -> None:
    run = run_stack(stack, env).require_ok()
    policy = data_protection(env)
    data = [r for r in run.resources if r["type"] in DATA_RESOURCE_TYPES]
    wrong = [
        _describe(r) for r in data if (r["protect"], r["retain_on_delete"]) != (policy.protect, policy.retain_on_delete)
    ]
    assert wrong == [], (
        f"{stack}/{env}: data resources without data_resource_options() "
        f"(expected protect={policy.protect}, retain_on_delete={policy.retain_on_delete}): {wrong}"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_else_survives_a_destroy(stack: str, env: str) -> None:
    """Compute and edge are destroyed freely; only data resources, their children and the
    prod database (AWS deletion protection) are kept."""
    run = run_stack(stack, env).require_ok()
    kept = [r for r in run.resources if r["protect"] or r["retain_on_delete"]]
    unexpected = [
        _describe(r)
        for r in kept
        if r["type"] not in DATA_RESOURCE_TYPES
        and _parent_type(r) not in DATA_RESOURCE_TYPES
        and not (r["type"] == RDS_INSTANCE and ENVIRONMENT_SETTINGS[env].deletion_protection)
    ]
    assert unexpected == []
    if stack in ("compute", "edge"):
        assert kept == []


def test_children_of_a_protected_bucket_inherit_its_protection() -> None:
    run = run_stack("persistent", "dev").require_ok()
    children = [r for r in run.resources if _parent_type(r) == "aws:s3/bucket:Bucket"]
    assert children, "the buckets' encryption, policies and lifecycles are parented to their bucket"
    assert all(r["protect"] for r in children), [_describe(r) for r in children if not r["protect"]]
