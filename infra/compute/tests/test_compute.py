"""Compute stack under Pulumi mocks: contract, ALB, ECS, consolidated EC2, Step Functions."""

from __future__ import annotations

import json

from tradai_infra_shared.config import ENVIRONMENT_SETTINGS, SERVICES
from tradai_infra_shared.testing import contract_problems, run_stack, unknown_input_keys

STACK = "compute"
SERVICE = "aws:ecs/service:Service"


def test_inputs_use_known_pulumi_aws_arguments(env: str) -> None:
    assert unknown_input_keys(run_stack(STACK, env).require_ok()) == []


def test_contract(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    assert contract_problems(run) == []
    assert sorted(run.stack_references) == [
        f"organization/tradai-foundation/{env}",
        f"organization/tradai-persistent/{env}",
    ]


def test_alb_routes_the_four_services(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (alb,) = run.inputs_of("aws:lb/loadBalancer:LoadBalancer")
    assert alb["loadBalancerType"] == "application" and alb["dropInvalidHeaderFields"]
    target_groups = {tg["name"]: tg for tg in run.inputs_of("aws:lb/targetGroup:TargetGroup")}
    short = {"dev": "d", "staging": "s", "prod": "p"}[env]
    assert set(target_groups) == {f"tradai-{s['service_name']}-{short}" for s in SERVICES.values()}
    assert all(len(name) <= 32 for name in target_groups)
    assert {tg["port"] for tg in target_groups.values()} == {8000, 8002, 8003, 5000}
    expected_type = "instance" if ENVIRONMENT_SETTINGS[env].consolidated_ec2 else "ip"
    assert {tg["targetType"] for tg in target_groups.values()} == {expected_type}
    rules = run.inputs_of("aws:lb/listenerRule:ListenerRule")
    patterns = sorted(tuple(r["conditions"][0]["pathPattern"]["values"]) for r in rules)
    assert patterns == sorted([(p, f"{p}/*") for p in ("/api", "/data", "/strategy", "/mlflow")])
    assert all(r["transforms"][0]["type"] == "url-rewrite" for r in rules)


def test_https_listener_when_a_certificate_is_configured() -> None:
    run = run_stack(
        STACK, "prod", config={"tradai-compute:certificate_arn": "arn:aws:acm:eu-central-1:1:certificate/x"}
    )
    listeners = {lis["port"]: lis for lis in run.require_ok().inputs_of("aws:lb/listener:Listener")}
    assert listeners[443]["protocol"] == "HTTPS"
    assert listeners[80]["defaultActions"][0]["type"] == "redirect"


def test_cluster_and_service_names(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (cluster,) = run.inputs_of("aws:ecs/cluster:Cluster")
    assert cluster["name"] == f"tradai-{env}"
    services = {s["name"] for s in run.inputs_of(SERVICE)}
    trading = {f"tradai-dry-run-trading-{env}", f"tradai-live-trading-{env}"}
    api = {f"tradai-{n}-{env}" for n in ("backend-api", "data-collection", "strategy-service", "mlflow")}
    if ENVIRONMENT_SETTINGS[env].consolidated_ec2:
        assert services == trading
    else:
        assert services == trading | api
    assert set(run.exports["ecs_service_names"].values()) == services


def test_consolidated_ec2_in_dev_and_staging_only(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    groups = run.inputs_of("aws:autoscaling/group:Group")
    if env == "prod":
        assert groups == [] and run.exports["consolidated_asg_name"] == ""
        return
    (asg,) = groups
    assert asg["name"] == f"tradai-consolidated-{env}" == run.exports["consolidated_asg_name"]
    assert len(asg["targetGroupArns"]) == 4
    assert {"key": "Name", "value": f"tradai-consolidated-{env}", "propagateAtLaunch": True} in asg["tags"]
    (template,) = run.inputs_of("aws:ec2/launchTemplate:LaunchTemplate")
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"


def test_live_trading_never_on_spot_in_prod() -> None:
    run = run_stack(STACK, "prod").require_ok()
    live = run.named(SERVICE, "tradai-live-trading-prod")
    providers = {s["capacityProvider"] for s in live["capacityProviderStrategies"]}
    assert providers == {"FARGATE"}, "live trading must not run on FARGATE_SPOT in prod"


def test_fargate_spot_in_dev() -> None:
    run = run_stack(STACK, "dev").require_ok()
    for name in ("tradai-live-trading-dev", "tradai-dry-run-trading-dev"):
        providers = {s["capacityProvider"] for s in run.named(SERVICE, name)["capacityProviderStrategies"]}
        assert providers == {"FARGATE_SPOT"}
    (defaults,) = run.inputs_of("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert defaults["defaultCapacityProviderStrategies"][0]["capacityProvider"] == "FARGATE_SPOT"


def test_prod_services_are_redundant_across_azs() -> None:
    run = run_stack(STACK, "prod").require_ok()
    private_subnets = run_stack("foundation", "prod").require_ok().exports["private_subnet_ids"]
    for name in ("backend-api", "data-collection", "strategy-service", "mlflow"):
        service = run.named(SERVICE, f"tradai-{name}-prod")
        assert service["desiredCount"] >= 2
        assert service["networkConfiguration"]["subnets"] == private_subnets
        assert len(private_subnets) == 2
        assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    (cluster,) = run.inputs_of("aws:ecs/cluster:Cluster")
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]


def test_mlflow_gets_its_database_password_from_secrets_manager() -> None:
    run = run_stack(STACK, "prod").require_ok()
    task = run.named("aws:ecs/taskDefinition:TaskDefinition", "tradai-mlflow-prod", key="family")
    (container,) = json.loads(task["containerDefinitions"])
    secret_arn = run_stack("foundation", "prod").require_ok().exports["rds_secret_arn"]
    assert container["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": f"{secret_arn}:password::"}]
    assert all("PASSWORD" not in e["name"] for e in container["environment"])
    assert {"name": "DB_PORT", "value": "5432"} in container["environment"]


def test_backtest_state_machine(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (machine,) = run.inputs_of("aws:sfn/stateMachine:StateMachine")
    assert machine["name"] == f"tradai-backtest-{env}"
    definition = json.loads(machine["definition"])
    invoked = {
        s["Parameters"]["FunctionName"].rsplit(":", 1)[-1] for s in definition["States"].values() if s["Type"] == "Task"
    }
    assert invoked == {f"tradai-{n}-{env}" for n in ("validate-strategy", "backtest-launcher", "update-status")}
    policy = next(
        json.loads(p["inputs"]["policy"])
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p["name"] == "backtest-workflow-policy"
    )
    invoke = next(s for s in policy["Statement"] if s["Sid"] == "InvokeWorkflowLambdas")
    assert len(invoke["Resource"]) == 3


def test_tags_on_functions_services_and_roles(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    for typ in ("aws:lambda/function:Function", SERVICE, "aws:iam/role:Role", "aws:ecs/taskDefinition:TaskDefinition"):
        for resource in run.inputs_of(typ):
            assert {"Project": "tradai", "Environment": env, "ManagedBy": "pulumi"}.items() <= resource["tags"].items()
