"""Persistent stack: S3, DynamoDB, ECR, Cognito, CodeArtifact, CloudTrail.

Data-bearing resources live here so compute and edge can be destroyed and redeployed
freely; each is created with ``data_resource_options()``, so a ``pulumi destroy`` of this
stack is refused (see infra/README.md, "What a destroy leaves"). This stack reads no other
stack.
"""

import pulumi
import pulumi_aws as aws

from modules.cloudtrail import CloudTrail
from modules.codeartifact import CodeArtifact
from modules.cognito import Cognito
from modules.dynamodb import DynamoDBTables
from modules.ecr import EcrRepositories
from modules.s3 import S3Buckets
from tradai_infra_shared.config import check_environment_config

check_environment_config()
config = pulumi.Config()
account_id = aws.get_caller_identity_output().account_id

buckets = S3Buckets(account_id)
tables = DynamoDBTables()
ecr = EcrRepositories(manage=config.get_bool("manage_ecr_repositories") is not False)
cognito = Cognito(account_id)
codeartifact = CodeArtifact()
trail = CloudTrail(buckets.buckets["logs"], account_id)

pulumi.export("bucket_names", buckets.names)
pulumi.export("bucket_arns", buckets.arns)
pulumi.export("dynamodb_table_names", tables.names)
pulumi.export("dynamodb_table_arns", tables.arns)
pulumi.export("ecr_repository_urls", ecr.url_map)
pulumi.export("ecr_repository_arns", ecr.arn_map)
pulumi.export("cognito_user_pool_id", cognito.user_pool.id)
pulumi.export("cognito_user_pool_arn", cognito.user_pool.arn)
pulumi.export("cognito_m2m_client_id", cognito.m2m_client.id)
pulumi.export("cognito_issuer_url", cognito.issuer_url)
pulumi.export("codeartifact_domain", codeartifact.domain.domain)
pulumi.export("codeartifact_repository", codeartifact.repository.repository)
pulumi.export("cloudtrail_arn", trail.trail.arn)
