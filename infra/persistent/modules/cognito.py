"""Cognito user pool for the API, with a machine-to-machine (client credentials) client."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import (
    AWS_REGION,
    COGNITO_SCOPES,
    PROJECT_NAME,
    get_env_settings,
    get_resource_name,
    get_tags,
)
from tradai_infra_shared.protection import data_resource_options

RESOURCE_SERVER = f"{PROJECT_NAME}-api"


class Cognito:
    def __init__(self, account_id: pulumi.Input[str]) -> None:
        settings = get_env_settings()
        self.user_pool = aws.cognito.UserPool(
            "user-pool",
            name=get_resource_name("users"),
            admin_create_user_config={"allow_admin_create_user_only": True},
            auto_verified_attributes=["email"],
            username_attributes=["email"],
            mfa_configuration="OPTIONAL",
            software_token_mfa_configuration={"enabled": True},
            password_policy={
                "minimum_length": 14,
                "require_lowercase": True,
                "require_uppercase": True,
                "require_numbers": True,
                "require_symbols": True,
                "temporary_password_validity_days": 3,
            },
            account_recovery_setting={"recovery_mechanisms": [{"name": "verified_email", "priority": 1}]},
            deletion_protection="ACTIVE" if settings.deletion_protection else "INACTIVE",
            tags=get_tags("auth"),
            opts=data_resource_options(),
        )
        self.domain = aws.cognito.UserPoolDomain(
            "user-pool-domain",
            user_pool_id=self.user_pool.id,
            domain=pulumi.Output.from_input(account_id).apply(lambda acct: f"{get_resource_name('auth')}-{acct}"),
        )
        self.resource_server = aws.cognito.ResourceServer(
            "api-resource-server",
            user_pool_id=self.user_pool.id,
            identifier=RESOURCE_SERVER,
            name=RESOURCE_SERVER,
            scopes=[{"scope_name": s, "scope_description": f"{s} access to the TradAI API"} for s in COGNITO_SCOPES],
        )
        self.m2m_client = aws.cognito.UserPoolClient(
            "m2m-client",
            name=get_resource_name("m2m"),
            user_pool_id=self.user_pool.id,
            generate_secret=True,  # held by Cognito; read it with `aws cognito-idp describe-user-pool-client`
            allowed_oauth_flows=["client_credentials"],
            allowed_oauth_flows_user_pool_client=True,
            allowed_oauth_scopes=[f"{RESOURCE_SERVER}/{s}" for s in COGNITO_SCOPES],
            supported_identity_providers=["COGNITO"],
            access_token_validity=60,
            token_validity_units={"access_token": "minutes"},
            prevent_user_existence_errors="ENABLED",
            opts=pulumi.ResourceOptions(depends_on=[self.resource_server]),
        )
        self.issuer_url = pulumi.Output.concat("https://cognito-idp.", AWS_REGION, ".amazonaws.com/", self.user_pool.id)
