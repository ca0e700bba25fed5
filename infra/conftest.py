"""Shared pytest setup for the four stacks' tests.

- In-process tests (config, builders, a stack's modules loaded by path) run against Pulumi's
  mock runtime, configured here before anything imports tradai_infra_shared.config.
- Whole programs run in subprocesses (tradai_infra_shared.testing.run_stack); the default
  (stack, environment) runs the collected tests need are started up front, two at a time,
  so the suite does not wait on them one by one.
"""

from __future__ import annotations

import os

import pytest

from tradai_infra_shared.testing.mocks import TradaiMocks, install_mocks

install_mocks(TradaiMocks({"organization/tradai-persistent/dev": {}}), project="tradai-tests", stack="dev")

STACKS = ("persistent", "foundation", "compute", "edge")
ENVS = ("dev", "staging", "prod")


@pytest.fixture(scope="session", autouse=True)
def _prewarm_stack_runs(request: pytest.FixtureRequest) -> None:
    from tradai_infra_shared.exports import UPSTREAMS
    from tradai_infra_shared.testing import prewarm

    wanted: set[str] = set()
    for item in request.session.items:
        parts = item.path.parts
        for stack in STACKS:
            if stack in parts and "tests" in parts:
                wanted.add(stack)
    closure = set(wanted)
    for stack in wanted:
        closure |= set(UPSTREAMS[stack])
    pairs = [(stack, env) for stack in STACKS if stack in closure for env in ENVS]
    if pairs:
        prewarm(pairs, workers=int(os.environ.get("TRADAI_INFRA_TEST_WORKERS", "2")))


@pytest.fixture(params=ENVS)
def env(request: pytest.FixtureRequest) -> str:
    return request.param
