"""PostgreSQL for MLflow: database subnets only, encrypted, master password owned by
Secrets Manager (``manage_master_user_password``), never by Pulumi config or state."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import get_env_settings, get_resource_name, get_tags

ENGINE_VERSION = "16"
DB_NAME = "mlflow"
PORT = 5432


class Rds:
    def __init__(self, database_subnet_ids: list[pulumi.Input[str]], security_group_id: pulumi.Input[str]) -> None:
        settings = get_env_settings()
        tags = get_tags("mlflow-db")
        self.subnet_group = aws.rds.SubnetGroup(
            "db-subnet-group",
            name=get_resource_name("db-subnets"),
            subnet_ids=database_subnet_ids,
            tags=tags,
        )
        self.parameter_group = aws.rds.ParameterGroup(
            "db-parameters",
            name=get_resource_name("postgres16"),
            family="postgres16",
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {"name": "log_min_duration_statement", "value": "1000"},
            ],
            tags=tags,
        )
        identifier = get_resource_name("mlflow-db")
        self.instance = aws.rds.Instance(
            "mlflow-db",
            identifier=identifier,
            engine="postgres",
            engine_version=ENGINE_VERSION,
            instance_class=settings.rds_instance_class,
            allocated_storage=settings.rds_allocated_storage,
            max_allocated_storage=settings.rds_allocated_storage * 5,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=DB_NAME,
            username="mlflow",
            manage_master_user_password=True,
            port=PORT,
            multi_az=settings.multi_az,
            db_subnet_group_name=self.subnet_group.name,
            parameter_group_name=self.parameter_group.name,
            vpc_security_group_ids=[security_group_id],
            publicly_accessible=False,
            backup_retention_period=settings.rds_backup_retention_days,
            deletion_protection=settings.deletion_protection,
            # Every environment keeps a final snapshot when the instance is deleted (a destroy
            # of foundation, or a replacement). The name is fixed, so a second delete fails
            # until the previous final snapshot is deleted or renamed: it never overwrites one.
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{identifier}-final",
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            performance_insights_enabled=settings.multi_az,
            enabled_cloudwatch_logs_exports=["postgresql"],
            apply_immediately=not settings.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(protect=settings.deletion_protection),
        )
        self.secret_arn: pulumi.Output[str] = self.instance.master_user_secrets.apply(
            lambda secrets: (
                secrets[0]["secret_arn"] if secrets and isinstance(secrets[0], dict) else secrets[0].secret_arn
            )
        )
