"""The 17 image Lambdas: one per lambdas/<name>/Dockerfile, pinned by digest, or a clear failure."""

from __future__ import annotations

import json

import pytest

from tradai_infra_shared.config import ECR_REPOSITORIES, ENVIRONMENT_SETTINGS, LAMBDA_NAMES
from tradai_infra_shared.testing import (
    MANIFEST_ENV,
    REPO_ROOT,
    fake_digest,
    fake_image_manifest,
    import_stack_module,
    run_stack,
    write_manifest,
)

STACK = "compute"
FUNCTION = "aws:lambda/function:Function"


def image_functions(run) -> dict[str, dict]:
    return {f["name"]: f for f in run.inputs_of(FUNCTION) if f.get("packageType") == "Image"}


def lambda_folders() -> set[str]:
    return {p.parent.name for p in (REPO_ROOT / "lambdas").glob("*/Dockerfile")} - {"base"}


def test_exactly_one_function_per_lambda_folder(env: str) -> None:
    if not (REPO_ROOT / "lambdas").is_dir():
        pytest.skip("lambdas/ does not exist in this checkout")
    run = run_stack(STACK, env).require_ok()
    functions = set(image_functions(run))
    expected = {f"tradai-{name}-{env}" for name in lambda_folders()}
    missing = sorted(expected - functions)
    extra = sorted(functions - expected)
    assert not missing, f"Lambda folders without a function (add them to config.LAMBDA_NAMES): {missing}"
    assert not extra, f"functions without a lambdas/<name>/Dockerfile: {extra}"
    assert len(run.inputs_of(FUNCTION)) == len(expected) + 1  # + the inline update-nat-routes


def test_functions_follow_config(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    assert set(image_functions(run)) == {f"tradai-{name}-{env}" for name in LAMBDA_NAMES}
    assert set(run.exports["lambda_function_names"]) == set(LAMBDA_NAMES)


def test_functions_are_pinned_by_manifest_digest(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    urls = run_stack("persistent", env).require_ok().exports["ecr_repository_urls"]
    for name in LAMBDA_NAMES:
        function = image_functions(run)[f"tradai-{name}-{env}"]
        repository = f"tradai/lambda-{name}"
        assert function["imageUri"] == f"{urls[repository]}@{fake_digest(repository)}"
        assert "@sha256:" in function["imageUri"] and ":latest" not in function["imageUri"]


def test_missing_digest_fails_naming_the_image_and_the_fix() -> None:
    manifest = write_manifest(fake_image_manifest(missing=["tradai/lambda-health-check"]))
    run = run_stack(STACK, "dev", env_vars={MANIFEST_ENV: manifest})
    assert not run.ok
    assert "tradai/lambda-health-check" in run.error
    assert "cargo xtask lambda-bootstrap" in run.error
    assert run.resources == [], "nothing may be declared when a digest is missing"


def test_absent_manifest_fails_the_same_clear_way() -> None:
    run = run_stack(STACK, "dev", env_vars={MANIFEST_ENV: ""})
    assert not run.ok
    assert MANIFEST_ENV in run.error and "cargo xtask lambda-bootstrap" in run.error
    run = run_stack(STACK, "dev", env_vars={MANIFEST_ENV: "/nonexistent/image-manifest.json"})
    assert not run.ok and "does not exist" in run.error and "cargo xtask lambda-bootstrap" in run.error


def test_malformed_digest_is_rejected() -> None:
    manifest = fake_image_manifest()
    manifest["images"]["tradai/lambda-dlq-redrive"] = "latest"
    run = run_stack(STACK, "dev", env_vars={MANIFEST_ENV: write_manifest(manifest)})
    assert not run.ok and "tradai/lambda-dlq-redrive" in run.error and "sha256:<64 hex>" in run.error


def test_manifest_path_from_stack_config() -> None:
    manifest = write_manifest(fake_image_manifest())
    run = run_stack(
        STACK, "staging", config={"tradai-compute:image_manifest": manifest}, env_vars={MANIFEST_ENV: ""}
    ).require_ok()
    assert len(image_functions(run)) == len(LAMBDA_NAMES)


def test_services_use_latest_unless_pinned() -> None:
    run = run_stack(STACK, "prod").require_ok()
    images = {
        json.loads(t["containerDefinitions"])[0]["image"]
        for t in run.inputs_of("aws:ecs/taskDefinition:TaskDefinition")
    }
    assert all(image.endswith(":latest") for image in images)
    pinned = run_stack(STACK, "prod", config={"tradai-compute:pin_service_images": "true"}).require_ok()
    images = {
        json.loads(t["containerDefinitions"])[0]["image"]
        for t in pinned.inputs_of("aws:ecs/taskDefinition:TaskDefinition")
    }
    assert all("@sha256:" in image for image in images)


def test_lambda_roles_are_least_privilege(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        document = json.loads(policy["inputs"]["policy"])
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            assert all(a != "*" and not a.endswith(":*") for a in statement["Action"]), policy["name"]
            if statement["Resource"] == ["*"]:
                # Only APIs without resource-level permissions may use "*".
                assert all(
                    a.split(":")[0] in {"xray", "ssmmessages", "ecr", "logs", "ec2", "autoscaling", "route53"}
                    for a in statement["Action"]
                ), (policy["name"], statement)


def test_no_secret_values_in_function_environments(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    for function in run.inputs_of(FUNCTION):
        variables = (function.get("environment") or {}).get("variables", {})
        assert not [k for k in variables if any(w in k.upper() for w in ("PASSWORD", "SECRET", "TOKEN"))]
        assert variables.get("TRADAI_ENV", env) == env


def test_log_retention_follows_the_environment(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    groups = run.inputs_of("aws:cloudwatch/logGroup:LogGroup")
    assert groups and {g["retentionInDays"] for g in groups} == {ENVIRONMENT_SETTINGS[env].log_retention_days}


def test_triggers() -> None:
    run = run_stack(STACK, "dev").require_ok()
    mappings = run.inputs_of("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert sorted(m["eventSourceArn"].rsplit(":", 1)[-1] for m in mappings) == [
        "tradai-backtest-queue-dev",
        "tradai-backtest-status-dev",
    ]
    assert all(m["functionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    schedules = {
        r["name"]: r["scheduleExpression"]
        for r in run.inputs_of("aws:cloudwatch/eventRule:EventRule")
        if r.get("scheduleExpression")
    }
    assert schedules["tradai-drift-monitor-schedule-dev"] == "rate(1 day)"
    assert schedules["tradai-retraining-scheduler-schedule-dev"] == "rate(7 days)"
    (notification,) = run.inputs_of("aws:s3/bucketNotification:BucketNotification")
    assert notification["bucket"].startswith("tradai-results-dev-")
    assert notification["lambdaFunctions"][0]["filterPrefix"] == "results/"


def test_schedules_come_from_config() -> None:
    run = run_stack(STACK, "staging", config={"tradai-compute:drift_monitor_schedule": "rate(12 hours)"}).require_ok()
    rule = run.named("aws:cloudwatch/eventRule:EventRule", "tradai-drift-monitor-schedule-staging")
    assert rule["scheduleExpression"] == "rate(12 hours)"


def test_backtest_consumer_can_start_backtest_tasks() -> None:
    run = run_stack(STACK, "dev").require_ok()
    consumer = image_functions(run)["tradai-backtest-consumer-dev"]
    variables = consumer["environment"]["variables"]
    assert variables["ECS_CLUSTER"] == "tradai-dev"
    assert variables["BACKTEST_TASK_DEFINITION"] == "tradai-backtest-dev"
    assert variables["BACKTEST_SUBNETS"] and variables["BACKTEST_SECURITY_GROUPS"]
    task = run.named("aws:ecs/taskDefinition:TaskDefinition", "tradai-backtest-dev", key="family")
    assert json.loads(task["containerDefinitions"])[0]["name"] == "backtest"


def test_inline_update_nat_routes_function(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    function = run.named(FUNCTION, f"tradai-update-nat-routes-{env}")
    assert function["runtime"].startswith("python3") and function.get("packageType") != "Image"
    assert "vpcConfig" not in function, "it must work while the NAT it repairs is down"
    rule = run.named("aws:cloudwatch/eventRule:EventRule", f"tradai-update-nat-routes-{env}")
    pattern = json.loads(rule["eventPattern"])
    foundation = run_stack("foundation", env).require_ok()
    assert pattern["detail"]["AutoScalingGroupName"] == foundation.exports["nat_asg_names"]


def test_image_manifest_module_in_process(tmp_path) -> None:
    manifest = import_stack_module(STACK, "image_manifest")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(fake_image_manifest()))
    images = manifest.load_image_manifest(path)
    assert set(images) == set(ECR_REPOSITORIES)
    with pytest.raises(manifest.ImageManifestError, match="tradai/lambda-x.*cargo xtask lambda-bootstrap"):
        manifest.require_digests(images, ["tradai/lambda-x"], path)
    with pytest.raises(manifest.ImageManifestError, match="no image manifest"):
        manifest.load_image_manifest(None)
