"""Edge stack under Pulumi mocks: API Gateway, WAF, alarms, dashboard, and the contract."""

from __future__ import annotations

import json

from tradai_infra_shared.config import LAMBDA_NAMES
from tradai_infra_shared.testing import contract_problems, run_stack, unknown_input_keys

STACK = "edge"


def test_inputs_use_known_pulumi_aws_arguments(env: str) -> None:
    assert unknown_input_keys(run_stack(STACK, env).require_ok()) == []


def test_contract(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    assert contract_problems(run) == []
    assert sorted(r.split("/")[1] for r in run.stack_references) == [
        "tradai-compute",
        "tradai-foundation",
        "tradai-persistent",
    ]
    read_from = {read["stack"].split("/")[1] for read in run.stack_reads}
    assert read_from == {"tradai-compute", "tradai-foundation", "tradai-persistent"}


def test_http_api_routes_through_the_alb(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    compute = run_stack("compute", env).require_ok()
    persistent = run_stack("persistent", env).require_ok()
    (api,) = run.inputs_of("aws:apigatewayv2/api:Api")
    assert api["protocolType"] == "HTTP" and api["name"] == f"tradai-api-{env}"
    (integration,) = run.inputs_of("aws:apigatewayv2/integration:Integration")
    assert integration["connectionType"] == "VPC_LINK"
    assert integration["integrationUri"] == compute.exports["alb_listener_arn"]
    routes = {r["routeKey"]: r for r in run.inputs_of("aws:apigatewayv2/route:Route")}
    assert set(routes) == {
        "ANY /api/{proxy+}",
        "ANY /data/{proxy+}",
        "ANY /strategy/{proxy+}",
        "ANY /mlflow/{proxy+}",
        "GET /api/health",
    }
    assert routes["GET /api/health"]["authorizationType"] == "NONE"
    assert all(r["authorizationType"] == "JWT" for k, r in routes.items() if k != "GET /api/health")
    (authorizer,) = run.inputs_of("aws:apigatewayv2/authorizer:Authorizer")
    assert authorizer["jwtConfiguration"]["issuer"] == persistent.exports["cognito_issuer_url"]
    assert authorizer["jwtConfiguration"]["audiences"] == [persistent.exports["cognito_m2m_client_id"]]
    (stage,) = run.inputs_of("aws:apigatewayv2/stage:Stage")
    assert stage["defaultRouteSettings"]["throttlingRateLimit"] > 0


def test_custom_domain_and_cors_are_optional() -> None:
    run = run_stack(
        STACK,
        "staging",
        config={
            "tradai-edge:api_domain": "api.example.com",
            "tradai-edge:certificate_arn": "arn:aws:acm:eu-central-1:1:certificate/x",
            "tradai-edge:cors_allowed_origins": '["https://app.example.com"]',
        },
    ).require_ok()
    (domain,) = run.inputs_of("aws:apigatewayv2/domainName:DomainName")
    assert domain["domainName"] == "api.example.com"
    (api,) = run.inputs_of("aws:apigatewayv2/api:Api")
    assert api["corsConfiguration"]["allowOrigins"] == ["https://app.example.com"]
    assert run_stack(STACK, "staging").require_ok().inputs_of("aws:apigatewayv2/domainName:DomainName") == []


def test_waf_rate_limits_and_protects_the_alb(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (acl,) = run.inputs_of("aws:wafv2/webAcl:WebAcl")
    rate_rules = [r for r in acl["rules"] if "rateBasedStatement" in r["statement"]]
    assert rate_rules and all("block" in r["action"] for r in rate_rules)
    assert rate_rules[0]["statement"]["rateBasedStatement"]["limit"] == 2000
    (association,) = run.inputs_of("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert association["resourceArn"] == run_stack("compute", env).require_ok().exports["alb_arn"]


def test_alarms_and_composite(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    alarms = {a["name"]: a for a in run.inputs_of("aws:cloudwatch/metricAlarm:MetricAlarm")}
    for name in LAMBDA_NAMES:
        assert f"tradai-{name}-errors-{env}" in alarms
    assert alarms[f"tradai-alb-latency-{env}"]["threshold"] == 5.0
    heartbeat = f"tradai-heartbeat-{env}" in alarms
    assert heartbeat is (env == "prod"), "heartbeat detection is configured for prod (alarm_min_strategies)"
    (composite,) = run.inputs_of("aws:cloudwatch/compositeAlarm:CompositeAlarm")
    alerts = run_stack("foundation", env).require_ok().exports["alerts_topic_arn"]
    assert composite["alarmActions"] == [alerts]
    assert all(f'ALARM("{name}")' in composite["alarmRule"] for name in alarms)


def test_dashboard(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (dashboard,) = run.inputs_of("aws:cloudwatch/dashboard:Dashboard")
    assert dashboard["dashboardName"] == f"tradai-trading-{env}" == run.exports["dashboard_name"]
    body = json.loads(dashboard["dashboardBody"])
    titles = {w["properties"]["title"] for w in body["widgets"]}
    assert {"Lambda errors", "Active strategies", "Backtest queues"} <= titles
