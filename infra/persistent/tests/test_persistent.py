"""Persistent stack under Pulumi mocks: buckets, tables, repositories, auth, audit."""

from __future__ import annotations

import json

import pytest

from tradai_infra_shared.config import DYNAMODB_TABLES, ECR_REPOSITORIES, ENVIRONMENT_SETTINGS, S3_BUCKETS
from tradai_infra_shared.protection import DATA_RESOURCE_TYPES, data_protection
from tradai_infra_shared.testing import contract_problems, run_stack, unknown_input_keys

STACK = "persistent"
TAGLESS = {
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:cognito/userPoolDomain:UserPoolDomain",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:cognito/resourceServer:ResourceServer",
    "aws:cognito/userPoolClient:UserPoolClient",
}


def test_inputs_use_known_pulumi_aws_arguments(env: str) -> None:
    assert unknown_input_keys(run_stack(STACK, env).require_ok()) == []


def test_contract(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    assert contract_problems(run) == []
    assert run.stack_references == []


def test_tags_on_every_taggable_resource(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    for resource in run.resources:
        if resource["type"] in TAGLESS:
            continue
        tags = resource["inputs"].get("tags")
        assert tags, f"{resource['type']} {resource['name']} has no tags"
        assert {"Project": "tradai", "Environment": env, "ManagedBy": "pulumi"}.items() <= tags.items()


def test_buckets_are_private_encrypted_and_named_per_environment(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    buckets = run.inputs_of("aws:s3/bucket:Bucket")
    assert sorted(b["bucket"].split("-")[1] for b in buckets) == sorted(S3_BUCKETS)
    assert all(b["bucket"].startswith("tradai-") and f"-{env}-" in b["bucket"] for b in buckets)
    encryption = run.inputs_of("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert len(encryption) == len(S3_BUCKETS)
    algorithms = {r["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for r in encryption}
    assert algorithms <= {"aws:kms", "AES256"}
    blocks = run.inputs_of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert len(blocks) == len(S3_BUCKETS)
    assert all(b["blockPublicAcls"] and b["blockPublicPolicy"] and b["restrictPublicBuckets"] for b in blocks)
    policies = [json.loads(p["policy"]) for p in run.inputs_of("aws:s3/bucketPolicy:BucketPolicy")]
    assert len(policies) == len(S3_BUCKETS)
    assert all(any(s["Sid"] == "DenyInsecureTransport" for s in p["Statement"]) for p in policies)


def test_dynamodb_tables(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    tables = run.inputs_of("aws:dynamodb/table:Table")
    assert sorted(t["name"] for t in tables) == sorted(f"{base}-{env}" for base in DYNAMODB_TABLES.values())
    for table in tables:
        assert table["serverSideEncryption"]["enabled"] is True
        assert table["pointInTimeRecovery"]["enabled"] is True
        assert table["billingMode"] == "PAY_PER_REQUEST"
        assert table["deletionProtectionEnabled"] is ENVIRONMENT_SETTINGS[env].deletion_protection


def test_one_ecr_repository_per_published_image(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    repos = run.inputs_of("aws:ecr/repository:Repository")
    assert sorted(r["name"] for r in repos) == sorted(ECR_REPOSITORIES)
    assert all(r["imageScanningConfiguration"]["scanOnPush"] for r in repos)
    assert set(run.exports["ecr_repository_urls"]) == set(ECR_REPOSITORIES)
    assert len(run.inputs_of("aws:ecr/lifecyclePolicy:LifecyclePolicy")) == len(ECR_REPOSITORIES)


def test_ecr_repositories_can_be_looked_up_instead_of_owned() -> None:
    run = run_stack(STACK, "staging", config={"tradai-persistent:manage_ecr_repositories": "false"}).require_ok()
    assert run.inputs_of("aws:ecr/repository:Repository") == []
    assert set(run.exports["ecr_repository_urls"]) == set(ECR_REPOSITORIES)
    assert contract_problems(run) == []


def test_cognito_machine_to_machine_client(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    (client,) = run.inputs_of("aws:cognito/userPoolClient:UserPoolClient")
    assert client["allowedOauthFlows"] == ["client_credentials"]
    assert all(scope.startswith("tradai-api/") for scope in client["allowedOauthScopes"])
    assert run.exports["cognito_issuer_url"].startswith("https://cognito-idp.eu-central-1.amazonaws.com/")


def test_codeartifact_and_cloudtrail(env: str) -> None:
    run = run_stack(STACK, env).require_ok()
    domain = run.named("aws:codeartifact/domain:Domain", f"tradai-{env}", key="domain")
    assert domain
    (trail,) = run.inputs_of("aws:cloudtrail/trail:Trail")
    assert trail["isMultiRegionTrail"] and trail["enableLogFileValidation"]
    assert trail["name"] == f"tradai-trail-{env}"


def test_aws_deletion_protection_is_on_in_prod_only() -> None:
    prod, dev = run_stack(STACK, "prod").require_ok(), run_stack(STACK, "dev").require_ok()
    assert prod.inputs_of("aws:cognito/userPool:UserPool")[0]["deletionProtection"] == "ACTIVE"
    assert dev.inputs_of("aws:cognito/userPool:UserPool")[0]["deletionProtection"] == "INACTIVE"
    assert prod.exports["bucket_names"]["results"].startswith("tradai-results-prod-")


def test_every_data_resource_survives_a_destroy(env: str) -> None:
    """The persistent stack's data, counted by type, all with the environment's protection
    (the cross-stack check in shared/tests/test_data_protection.py enumerates the same way)."""
    run = run_stack(STACK, env).require_ok()
    counts: dict[str, int] = {}
    for resource in run.resources:
        if resource["type"] in DATA_RESOURCE_TYPES:
            counts[resource["type"]] = counts.get(resource["type"], 0) + 1
    assert counts == {
        "aws:dynamodb/table:Table": len(DYNAMODB_TABLES),
        "aws:s3/bucket:Bucket": len(S3_BUCKETS),
        "aws:ecr/repository:Repository": len(ECR_REPOSITORIES),
        "aws:cognito/userPool:UserPool": 1,
        "aws:codeartifact/domain:Domain": 1,
        "aws:codeartifact/repository:Repository": 2,
    }
    policy = data_protection(env)
    for resource in run.resources:
        if resource["type"] in DATA_RESOURCE_TYPES:
            assert (resource["protect"], resource["retain_on_delete"]) == (policy.protect, policy.retain_on_delete)
    policies = run.of_type("aws:s3/bucketPolicy:BucketPolicy")
    assert len(policies) == len(S3_BUCKETS)
    assert all(p["protect"] for p in policies), "a kept bucket keeps its TLS-only policy"
    (trail,) = run.of_type("aws:cloudtrail/trail:Trail")
    assert not trail["protect"] and not trail["retain_on_delete"], "only data is kept; the trail is recreated"


@pytest.mark.parametrize("output", ["bucket_names", "bucket_arns", "dynamodb_table_names", "dynamodb_table_arns"])
def test_map_outputs_are_keyed_by_config_keys(output: str) -> None:
    run = run_stack(STACK, "dev").require_ok()
    expected = set(S3_BUCKETS) if output.startswith("bucket") else set(DYNAMODB_TABLES)
    assert set(run.exports[output]) == expected
