"""Foundation stack under Pulumi mocks: network, database, queues, topics, environments."""

from __future__ import annotations

import json

from tradai_infra_shared.config import ENVIRONMENT_SETTINGS, VPC_CIDR
from tradai_infra_shared.testing import contract_problems, run_stack, unknown_input_keys

STACK = "foundation"


def test_inputs_use_known_pulumi_aws_arguments(env: str) -> None:
    assert unknown_input_keys(run_stack(STACK, env).require_ok()) == []


def test_contract(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    assert contract_problems(run) == []
    assert run.stack_references == [f"organization/tradai-persistent/{env}"]


def test_vpc_has_six_subnets_over_two_azs_and_three_tiers(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (vpc,) = run.inputs_of("aws:ec2/vpc:Vpc")
    assert vpc["cidrBlock"] == VPC_CIDR
    subnets = run.inputs_of("aws:ec2/subnet:Subnet")
    assert len(subnets) == 6
    assert {s["availabilityZone"] for s in subnets} == {"eu-central-1a", "eu-central-1b"}
    by_tier: dict[str, set[str]] = {}
    for subnet in subnets:
        by_tier.setdefault(subnet["tags"]["Tier"], set()).add(subnet["availabilityZone"])
    assert by_tier == {tier: {"eu-central-1a", "eu-central-1b"} for tier in ("public", "private", "database")}
    assert all(s["mapPublicIpOnLaunch"] == (s["tags"]["Tier"] == "public") for s in subnets)


def test_availability_follows_the_environment(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    settings = ENVIRONMENT_SETTINGS[env]
    (db,) = run.inputs_of("aws:rds/instance:Instance")
    assert db["multiAz"] is settings.multi_az
    assert db["instanceClass"] == settings.rds_instance_class
    nat_groups = run.inputs_of("aws:autoscaling/group:Group")
    assert len(nat_groups) == (2 if settings.multi_az else 1)
    (flow_logs,) = [g for g in run.inputs_of("aws:cloudwatch/logGroup:LogGroup") if "flow-logs" in g["name"]]
    assert flow_logs["retentionInDays"] == settings.log_retention_days


def test_prod_is_multi_az_with_full_redundancy() -> None:
    run = run_stack(STACK, "prod").require_ok()
    (db,) = run.inputs_of("aws:rds/instance:Instance")
    assert db["multiAz"] is True, "prod RDS must be multi-AZ"
    assert db["deletionProtection"] is True
    nat_groups = run.inputs_of("aws:autoscaling/group:Group")
    assert len(nat_groups) == 2, "prod needs one NAT instance per AZ"
    assert len(run.exports["nat_asg_names"]) == 2
    endpoint_subnets = [
        e["subnetIds"] for e in run.inputs_of("aws:ec2/vpcEndpoint:VpcEndpoint") if e["vpcEndpointType"] == "Interface"
    ]
    assert all(len(subnets) == 2 for subnets in endpoint_subnets)


def test_dev_and_staging_are_single_az() -> None:
    for env, size in (("dev", "db.t4g.micro"), ("staging", "db.t4g.small")):
        run = run_stack(STACK, env).require_ok()
        (db,) = run.inputs_of("aws:rds/instance:Instance")
        assert (db["multiAz"], db["instanceClass"]) == (False, size)
        assert len(run.exports["nat_asg_names"]) == 1


def test_database_keeps_a_final_snapshot_on_delete(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (db,) = run.of_type("aws:rds/instance:Instance")
    assert db["inputs"]["skipFinalSnapshot"] is False, f"{env} RDS would be deleted without a final snapshot"
    assert db["inputs"]["finalSnapshotIdentifier"] == f"tradai-mlflow-db-{env}-final"
    # Pulumi protection follows AWS deletion protection: prod only, so foundation stays destroyable in dev.
    assert db["protect"] is ENVIRONMENT_SETTINGS[env].deletion_protection
    assert db["inputs"]["deletionProtection"] is ENVIRONMENT_SETTINGS[env].deletion_protection


def test_database_is_private_encrypted_and_its_secret_rotates(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (db,) = run.inputs_of("aws:rds/instance:Instance")
    assert db["storageEncrypted"] is True
    assert db["publiclyAccessible"] is False
    assert db["manageMasterUserPassword"] is True
    assert "password" not in db, "the master password must live in Secrets Manager only"
    (rotation,) = run.inputs_of("aws:secretsmanager/secretRotation:SecretRotation")
    assert rotation["rotationRules"]["automaticallyAfterDays"] == 30
    assert rotation["secretId"] == run.exports["rds_secret_arn"]
    (subnet_group,) = run.inputs_of("aws:rds/subnetGroup:SubnetGroup")
    assert subnet_group["subnetIds"] == run.exports["database_subnet_ids"]


def test_queues_have_a_dead_letter_queue_and_encryption(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    queues = {q["name"]: q for q in run.inputs_of("aws:sqs/queue:Queue")}
    assert set(queues) == {
        f"tradai-backtest-queue-{env}",
        f"tradai-backtest-status-{env}",
        f"tradai-backtest-dlq-{env}",
    }
    assert all(q["sqsManagedSseEnabled"] for q in queues.values())
    for name in (f"tradai-backtest-queue-{env}", f"tradai-backtest-status-{env}"):
        redrive = json.loads(queues[name]["redrivePolicy"])
        assert redrive["deadLetterTargetArn"] == run.exports["backtest_dlq_arn"]


def test_topics(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    topics = {t["name"]: t for t in run.inputs_of("aws:sns/topic:Topic")}
    assert set(topics) == {f"tradai-alerts-{env}", f"tradai-registration-{env}"}
    assert all(t.get("kmsMasterKeyId") for t in topics.values())


def test_alert_emails_subscribe_to_alerts() -> None:
    run = run_stack(STACK, "dev", config={"tradai-foundation:alert_emails": '["ops@example.com"]'}).require_ok()
    (subscription,) = run.inputs_of("aws:sns/topicSubscription:TopicSubscription")
    assert subscription["endpoint"] == "ops@example.com" and subscription["protocol"] == "email"


def test_security_groups_open_only_what_is_needed(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    groups = {g["name"] for g in run.inputs_of("aws:ec2/securityGroup:SecurityGroup")}
    assert groups == {f"tradai-{k}-sg-{env}" for k in ("alb", "ecs", "lambda", "rds", "vpc-endpoints", "nat")}
    world_ingress = [
        r
        for r in run.inputs_of("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.get("cidrIpv4") == "0.0.0.0/0"
    ]
    assert sorted(r["fromPort"] for r in world_ingress) == [80, 443]
    assert all(r["securityGroupId"] == "alb-sg-id" for r in world_ingress)
    rds_ingress = [
        r
        for r in run.inputs_of("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["securityGroupId"] == "rds-sg-id"
    ]
    assert [(r["fromPort"], r.get("referencedSecurityGroupId")) for r in rds_ingress] == [(5432, "ecs-sg-id")]
    rules = run.inputs_of("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") + run.inputs_of(
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
    )
    assert all(r.get("description") for r in rules)


def test_network_acls_flow_logs_and_endpoints(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    assert len(run.inputs_of("aws:ec2/networkAcl:NetworkAcl")) == 3
    database_rules = [
        r for r in run.of_type("aws:ec2/networkAclRule:NetworkAclRule") if r["name"].startswith("database")
    ]
    assert all(r["inputs"]["cidrBlock"].startswith("10.0.1") for r in database_rules)
    (flow_log,) = run.inputs_of("aws:ec2/flowLog:FlowLog")
    assert flow_log["trafficType"] == "ALL"
    services = {
        e["serviceName"].rsplit(".", 1)[-1] if e["vpcEndpointType"] == "Gateway" else e["serviceName"]
        for e in run.inputs_of("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    for wanted in (
        "s3",
        "dynamodb",
        "com.amazonaws.eu-central-1.ecr.api",
        "com.amazonaws.eu-central-1.ecr.dkr",
        "com.amazonaws.eu-central-1.sts",
        "com.amazonaws.eu-central-1.ssm",
        "com.amazonaws.eu-central-1.sqs",
    ):
        assert wanted in services
    s3 = next(e for e in run.inputs_of("aws:ec2/vpcEndpoint:VpcEndpoint") if e["serviceName"].endswith(".s3"))
    sids = {s["Sid"] for s in json.loads(s3["policy"])["Statement"]}
    assert {"TradaiBuckets", "AllowSystemPackageBuckets"} <= sids


def test_nat_instances_are_cost_optimised(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    templates = run.inputs_of("aws:ec2/launchTemplate:LaunchTemplate")
    assert templates and all(t["instanceType"] == "t4g.nano" for t in templates)
    assert all(t["metadataOptions"]["httpTokens"] == "required" for t in templates)
    route_table_tags = [
        tag["value"]
        for g in run.inputs_of("aws:autoscaling/group:Group")
        for tag in g["tags"]
        if tag["key"] == "tradai:route-tables"
    ]
    served = sorted(rt for value in route_table_tags for rt in value.split(","))
    assert served == sorted(run.exports["private_route_table_ids"])
