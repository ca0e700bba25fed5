"""Compute stack: IAM roles, ALB, ECS cluster and services, consolidated EC2 (dev/staging),
the 17 image Lambdas pinned by digest, the backtest state machine and the inline
update-nat-routes Lambda.

Reads the persistent stack (ECR URLs, buckets, tables) and the foundation stack (network,
security groups, RDS, queues, topics). Deploy after `cargo xtask lambda-bootstrap`: every
Lambda image digest must be in the image manifest, or the program stops before creating
anything.
"""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from modules.alb import Alb
from modules.ec2_consolidated import ConsolidatedEc2
from modules.ecs import EcsCluster
from modules.ecs_services import EcsWorkloads
from modules.iam import Roles
from modules.image_manifest import load_image_manifest, manifest_path, require_digests
from modules.lambda_funcs import LambdaFunctions
from modules.nat_routes import UpdateNatRoutes
from modules.refs import Upstream, pick
from modules.step_functions import BacktestStateMachine, state_machine_arn
from tradai_infra_shared.config import (
    LAMBDA_NAMES,
    LAMBDA_SETTINGS,
    SERVICES,
    check_environment_config,
    get_ecr_repo_name,
    get_env_settings,
    get_lambda_repo_name,
)
from tradai_infra_shared.stack_refs import stack_ref

check_environment_config()
config = pulumi.Config()
settings = get_env_settings()

# Fail before anything is declared when an image digest is missing.
manifest_file = manifest_path(config.get("image_manifest"), base_dir=Path.cwd())
manifest = load_image_manifest(manifest_file)
lambda_digests = require_digests(manifest, [get_lambda_repo_name(n) for n in LAMBDA_NAMES], manifest_file)

persistent = stack_ref("persistent")
foundation = stack_ref("foundation")
up = Upstream(
    account_id=aws.get_caller_identity_output().account_id,
    bucket_names=persistent.get_output("bucket_names"),
    bucket_arns=persistent.get_output("bucket_arns"),
    table_arns=persistent.get_output("dynamodb_table_arns"),
    ecr_urls=persistent.get_output("ecr_repository_urls"),
    ecr_arns=persistent.get_output("ecr_repository_arns"),
    vpc_id=foundation.get_output("vpc_id"),
    public_subnet_ids=foundation.get_output("public_subnet_ids"),
    private_subnet_ids=foundation.get_output("private_subnet_ids"),
    private_route_table_ids=foundation.get_output("private_route_table_ids"),
    alb_sg_id=foundation.get_output("alb_sg_id"),
    ecs_sg_id=foundation.get_output("ecs_sg_id"),
    nat_asg_names=foundation.get_output("nat_asg_names"),
    rds_address=foundation.get_output("rds_address"),
    rds_port=foundation.get_output("rds_port"),
    rds_db_name=foundation.get_output("rds_db_name"),
    rds_secret_arn=foundation.get_output("rds_secret_arn"),
    queue_urls={
        "backtest": foundation.get_output("backtest_queue_url"),
        "status": foundation.get_output("status_queue_url"),
        "dlq": foundation.get_output("backtest_dlq_url"),
    },
    queue_arns={
        "backtest": foundation.get_output("backtest_queue_arn"),
        "status": foundation.get_output("status_queue_arn"),
        "dlq": foundation.get_output("backtest_dlq_arn"),
    },
    topic_arns={
        "alerts": foundation.get_output("alerts_topic_arn"),
        "registration": foundation.get_output("registration_topic_arn"),
    },
)

# Services follow `cargo xtask service-push` + `ecs-force-deploy`/`asg-refresh`, which move
# the mutable :latest tag; pin_service_images pins them to manifest digests instead.
pin_services = config.get_bool("pin_service_images") or False
service_digests = (
    require_digests(manifest, [get_ecr_repo_name(s) for s in SERVICES], manifest_file) if pin_services else {}
)


def service_image(service: str) -> pulumi.Output[str]:
    repository = get_ecr_repo_name(service)
    suffix = f"@{service_digests[repository]}" if pin_services else ":latest"
    return pick(up.ecr_urls, repository).apply(lambda url: f"{url}{suffix}")


images = {service: service_image(service) for service in SERVICES}
sfn_arn = state_machine_arn(up.account_id)

roles = Roles(up, sfn_arn)
alb = Alb(up.vpc_id, up.public_subnet_ids, up.alb_sg_id, config.get("certificate_arn"))
cluster = EcsCluster()
workloads = EcsWorkloads(
    up,
    cluster,
    roles,
    images,
    alb.target_groups,
    alb.listener,
    trading_desired_count=config.get_int("trading_desired_count") or 0,
)
consolidated = ConsolidatedEc2(up, roles, images, alb.target_groups) if settings.consolidated_ec2 else None
schedules = {
    key: config.get(key)
    for spec in LAMBDA_SETTINGS.values()
    if (spec.get("trigger") or ("",))[0] == "schedule"
    for key in [spec["trigger"][1]]
    if config.get(key)
}
lambdas = LambdaFunctions(up, roles, lambda_digests, workloads, schedules)
workflow = BacktestStateMachine(lambdas.functions)
nat_routes = UpdateNatRoutes(up)

pulumi.export("alb_arn", alb.load_balancer.arn)
pulumi.export("alb_arn_suffix", alb.load_balancer.arn_suffix)
pulumi.export("alb_dns_name", alb.load_balancer.dns_name)
pulumi.export("alb_listener_arn", alb.listener.arn)
pulumi.export("target_group_arn_suffixes", alb.target_group_arn_suffixes)
pulumi.export("ecs_cluster_name", cluster.cluster.name)
pulumi.export("ecs_cluster_arn", cluster.cluster.arn)
pulumi.export("ecs_service_names", workloads.service_names)
pulumi.export("consolidated_asg_name", consolidated.asg.name if consolidated else "")
pulumi.export("lambda_function_names", lambdas.names)
pulumi.export("lambda_function_arns", lambdas.arns)
pulumi.export("state_machine_arn", workflow.state_machine.arn)
pulumi.export("update_nat_routes_function_name", nat_routes.function.name)
