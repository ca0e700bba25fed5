"""Edge stack: HTTP API Gateway, WAF, CloudWatch alarms and dashboard.

Reads the persistent stack (Cognito), the foundation stack (subnets, security group,
queues, alerts topic) and the compute stack (ALB, ECS, Lambda names).
"""

import pulumi

from modules.api_gateway import HttpApi
from modules.cloudwatch_alarms import Alarms
from modules.cloudwatch_dashboard import Dashboard
from modules.waf import Waf
from tradai_infra_shared.config import check_environment_config
from tradai_infra_shared.stack_refs import stack_ref

check_environment_config()
config = pulumi.Config()
persistent = stack_ref("persistent")
foundation = stack_ref("foundation")
compute = stack_ref("compute")

api = HttpApi(
    private_subnet_ids=foundation.get_output("private_subnet_ids"),
    vpc_link_security_group_id=foundation.get_output("alb_sg_id"),
    alb_listener_arn=compute.get_output("alb_listener_arn"),
    cognito_issuer_url=persistent.get_output("cognito_issuer_url"),
    cognito_client_id=persistent.get_output("cognito_m2m_client_id"),
    cors_allowed_origins=config.get_object("cors_allowed_origins") or [],
    api_domain=config.get("api_domain"),
    certificate_arn=config.get("certificate_arn"),
)
waf = Waf(compute.get_output("alb_arn"), rate_limit=config.get_int("rate_limit") or 2000)
lambda_names = compute.get_output("lambda_function_names")
alarms = Alarms(
    alb_arn_suffix=compute.get_output("alb_arn_suffix"),
    dlq_name=foundation.get_output("backtest_dlq_name"),
    lambda_function_names=lambda_names,
    alerts_topic_arn=foundation.get_output("alerts_topic_arn"),
    latency_threshold_ms=config.get_int("alarm_latency_threshold") or 5000,
    min_strategies=config.get_int("alarm_min_strategies") or 0,
)
dashboard = Dashboard(
    alb_arn_suffix=compute.get_output("alb_arn_suffix"),
    queue_name=foundation.get_output("backtest_queue_name"),
    dlq_name=foundation.get_output("backtest_dlq_name"),
    cluster_name=compute.get_output("ecs_cluster_name"),
    service_names=compute.get_output("ecs_service_names"),
    function_names=lambda_names,
)

pulumi.export("api_endpoint", api.api.api_endpoint)
pulumi.export("api_id", api.api.id)
pulumi.export("web_acl_arn", waf.web_acl.arn)
pulumi.export("composite_alarm_arn", alarms.composite.arn)
pulumi.export("dashboard_name", dashboard.dashboard.dashboard_name)
