"""Project files: Pulumi projects, stack configs, the stack graph, the env template."""

from __future__ import annotations

import pytest
import yaml

from tradai_infra_shared.config import ENVIRONMENTS, STACKS
from tradai_infra_shared.exports import EXPORTS, UPSTREAMS
from tradai_infra_shared.testing import INFRA_DIR, stack_ref_literals


@pytest.mark.parametrize("stack", STACKS)
def test_pulumi_project(stack: str) -> None:
    project = yaml.safe_load((INFRA_DIR / stack / "Pulumi.yaml").read_text())
    assert project["name"] == f"tradai-{stack}"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["toolchain"] == "uv"
    assert (INFRA_DIR / stack / "__main__.py").is_file()
    assert (INFRA_DIR / stack / "modules" / "__init__.py").is_file()
    # Pulumi's uv toolchain uses the nearest pyproject.toml: there must be none per stack.
    assert not (INFRA_DIR / stack / "pyproject.toml").exists()


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stack_config(stack: str, env: str) -> None:
    data = yaml.safe_load((INFRA_DIR / stack / f"Pulumi.{env}.yaml").read_text())
    values = data["config"]
    assert values[f"tradai-{stack}:environment"] == env
    assert values["aws:region"] == "eu-central-1"
    for key in values:
        namespace = key.split(":", 1)[0]
        assert namespace in {f"tradai-{stack}", "aws", "tradai"}, f"{key} belongs to another project"
    secretish = [k for k in values if any(w in k.lower() for w in ("password", "secret", "token"))]
    assert not secretish, f"secrets come from AWS Secrets Manager, not config: {secretish}"


def test_stack_graph_is_acyclic_and_ordered() -> None:
    assert set(EXPORTS) == set(UPSTREAMS) == set(STACKS)
    for index, stack in enumerate(STACKS):
        assert set(UPSTREAMS[stack]) <= set(STACKS[:index]), f"{stack} reads a later stack"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_ref_literals_match_the_graph(stack: str) -> None:
    assert stack_ref_literals(stack) == set(UPSTREAMS[stack])


def test_env_example_lists_the_guide_variables() -> None:
    text = (INFRA_DIR / ".env.example").read_text()
    assignments = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#") and "=" in line
    )
    assert {"S3_PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_PROFILE", "AWS_REGION"} <= set(assignments)
    assert assignments["PULUMI_CONFIG_PASSPHRASE"] == ""


@pytest.mark.parametrize("stack", STACKS)
def test_stack_modules_import_in_process_under_their_own_name(stack: str) -> None:
    """Modules import each other relatively, so each stack's package loads beside the others."""
    from tradai_infra_shared.testing import import_stack_module

    names = sorted(p.stem for p in (INFRA_DIR / stack / "modules").glob("*.py") if p.stem != "__init__")
    assert names
    for name in names:
        module = import_stack_module(stack, name)
        assert module.__name__ == f"tradai_{stack}_modules.{name}"


#: Every module the guide names, in the stack that owns it (see README: the guide's
#: foundation table also lists the persistent and compute modules; the stack table wins).
GUIDE_MODULES = {
    "persistent": ("s3", "dynamodb", "ecr", "cognito", "codeartifact", "cloudtrail"),
    "foundation": (
        "vpc",
        "vpc_endpoints",
        "vpc_flow_logs",
        "nacl",
        "sns",
        "security_groups",
        "nat_instance",
        "rds",
        "secret_rotation",
        "sqs",
    ),
    "compute": ("iam", "alb", "ecs", "ecs_services", "ec2_consolidated", "lambda_funcs", "step_functions"),
    "edge": ("api_gateway", "waf", "cloudwatch_alarms", "cloudwatch_dashboard"),
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_module_the_guide_lists_exists(stack: str) -> None:
    present = {p.stem for p in (INFRA_DIR / stack / "modules").glob("*.py")}
    assert set(GUIDE_MODULES[stack]) <= present
    main = (INFRA_DIR / stack / "__main__.py").read_text()
    unused = [m for m in GUIDE_MODULES[stack] if f"modules.{m} import" not in main]
    assert not unused, f"{stack}/__main__.py does not use {unused}"
