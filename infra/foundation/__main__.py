"""Foundation stack: VPC, subnets, NAT, security groups, NACLs, VPC endpoints, flow logs,
RDS (with secret rotation), SQS and SNS. No container image dependencies.

Reads the persistent stack (bucket ARNs for the S3 endpoint policy).
"""

import pulumi
import pulumi_aws as aws

from modules.nacl import NetworkAcls
from modules.nat_instance import NatInstances
from modules.rds import Rds
from modules.secret_rotation import SecretRotation
from modules.security_groups import SecurityGroups
from modules.sns import Topics
from modules.sqs import Queues
from modules.vpc import Vpc
from modules.vpc_endpoints import VpcEndpoints
from modules.vpc_flow_logs import VpcFlowLogs
from tradai_infra_shared.config import AVAILABILITY_ZONES, VPC_CIDR, check_environment_config
from tradai_infra_shared.stack_refs import stack_ref

check_environment_config()
config = pulumi.Config()
account_id = aws.get_caller_identity_output().account_id
persistent = stack_ref("persistent")

vpc = Vpc()
security_groups = SecurityGroups(vpc.vpc.id)
NetworkAcls(vpc.vpc.id, {tier: vpc.subnet_ids(tier) for tier in vpc.subnets})
VpcFlowLogs(vpc.vpc.id)
VpcEndpoints(
    vpc.vpc.id,
    route_table_ids=vpc.private_route_table_ids + [vpc.database_route_table.id],
    private_subnet_ids=vpc.subnet_ids("private"),
    security_group_id=security_groups.vpc_endpoints.id,
    bucket_arns=persistent.get_output("bucket_arns"),
)
nat = NatInstances(vpc.vpc.id, vpc.subnet_ids("public"), vpc.private_route_table_ids, account_id)
rds = Rds(vpc.subnet_ids("database"), security_groups.rds.id)
SecretRotation(rds.secret_arn)
queues = Queues()
topics = Topics(account_id, config.get_object("alert_emails") or [])

pulumi.export("vpc_id", vpc.vpc.id)
pulumi.export("vpc_cidr", VPC_CIDR)
pulumi.export("availability_zones", list(AVAILABILITY_ZONES))
pulumi.export("public_subnet_ids", vpc.subnet_ids("public"))
pulumi.export("private_subnet_ids", vpc.subnet_ids("private"))
pulumi.export("database_subnet_ids", vpc.subnet_ids("database"))
pulumi.export("private_route_table_ids", vpc.private_route_table_ids)
pulumi.export("alb_sg_id", security_groups.alb.id)
pulumi.export("ecs_sg_id", security_groups.ecs.id)
pulumi.export("lambda_sg_id", security_groups.lambda_.id)
pulumi.export("rds_sg_id", security_groups.rds.id)
pulumi.export("vpc_endpoints_sg_id", security_groups.vpc_endpoints.id)
pulumi.export("nat_asg_names", nat.asg_names)
pulumi.export("rds_endpoint", rds.instance.endpoint)
pulumi.export("rds_address", rds.instance.address)
pulumi.export("rds_port", rds.instance.port)
pulumi.export("rds_db_name", rds.instance.db_name)
pulumi.export("rds_secret_arn", rds.secret_arn)
pulumi.export("backtest_queue_url", queues.backtest.url)
pulumi.export("backtest_queue_arn", queues.backtest.arn)
pulumi.export("backtest_queue_name", queues.backtest.name)
pulumi.export("status_queue_url", queues.status.url)
pulumi.export("status_queue_arn", queues.status.arn)
pulumi.export("backtest_dlq_url", queues.dlq.url)
pulumi.export("backtest_dlq_arn", queues.dlq.arn)
pulumi.export("backtest_dlq_name", queues.dlq.name)
pulumi.export("alerts_topic_arn", topics.alerts.arn)
pulumi.export("registration_topic_arn", topics.registration.arn)
