"""The contract between stacks: what each stack exports and which stacks it reads.

Stacks share values only through these exported outputs and ``stack_ref``. Tests check
that every ``__main__`` exports exactly its list and that every ``get_output`` a
downstream stack makes names an output of its upstream.
"""

from __future__ import annotations

#: Output names each stack exports (``pulumi.export``), in no particular order.
EXPORTS: dict[str, tuple[str, ...]] = {
    "persistent": (
        "bucket_names",
        "bucket_arns",
        "dynamodb_table_names",
        "dynamodb_table_arns",
        "ecr_repository_urls",
        "ecr_repository_arns",
        "cognito_user_pool_id",
        "cognito_user_pool_arn",
        "cognito_m2m_client_id",
        "cognito_issuer_url",
        "codeartifact_domain",
        "codeartifact_repository",
        "cloudtrail_arn",
    ),
    "foundation": (
        "vpc_id",
        "vpc_cidr",
        "availability_zones",
        "public_subnet_ids",
        "private_subnet_ids",
        "database_subnet_ids",
        "private_route_table_ids",
        "alb_sg_id",
        "ecs_sg_id",
        "lambda_sg_id",
        "rds_sg_id",
        "vpc_endpoints_sg_id",
        "nat_asg_names",
        "rds_endpoint",
        "rds_address",
        "rds_port",
        "rds_db_name",
        "rds_secret_arn",
        "backtest_queue_url",
        "backtest_queue_arn",
        "backtest_queue_name",
        "status_queue_url",
        "status_queue_arn",
        "backtest_dlq_url",
        "backtest_dlq_arn",
        "backtest_dlq_name",
        "alerts_topic_arn",
        "registration_topic_arn",
    ),
    "compute": (
        "alb_arn",
        "alb_arn_suffix",
        "alb_dns_name",
        "alb_listener_arn",
        "target_group_arn_suffixes",
        "ecs_cluster_name",
        "ecs_cluster_arn",
        "ecs_service_names",
        "consolidated_asg_name",
        "lambda_function_names",
        "lambda_function_arns",
        "state_machine_arn",
        "update_nat_routes_function_name",
    ),
    "edge": (
        "api_endpoint",
        "api_id",
        "web_acl_arn",
        "composite_alarm_arn",
        "dashboard_name",
    ),
}

#: Which stacks each stack reads through ``stack_ref`` (the stack graph).
UPSTREAMS: dict[str, tuple[str, ...]] = {
    "persistent": (),
    "foundation": ("persistent",),
    "compute": ("persistent", "foundation"),
    "edge": ("persistent", "foundation", "compute"),
}
