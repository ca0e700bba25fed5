"""CodeArtifact domain and Python repository (tradai-strategy is published here)."""

from __future__ import annotations

import pulumi_aws as aws

from tradai_infra_shared.config import CODEARTIFACT_REPOSITORY, ENVIRONMENT, PROJECT_NAME, get_tags
from tradai_infra_shared.protection import data_resource_options


class CodeArtifact:
    def __init__(self) -> None:
        self.domain = aws.codeartifact.Domain(
            "codeartifact-domain",
            domain=f"{PROJECT_NAME}-{ENVIRONMENT}",  # encrypted with the AWS-managed CodeArtifact key
            tags=get_tags("codeartifact"),
            opts=data_resource_options(),
        )
        self.pypi_store = aws.codeartifact.Repository(
            "pypi-store",
            domain=self.domain.domain,
            repository="pypi-store",
            description="Proxy of public PyPI",
            external_connections={"external_connection_name": "public:pypi"},
            tags=get_tags("codeartifact"),
            opts=data_resource_options(),
        )
        self.repository = aws.codeartifact.Repository(
            "python-repository",
            domain=self.domain.domain,
            repository=CODEARTIFACT_REPOSITORY,
            description="TradAI Python packages (tradai-strategy)",
            upstreams=[{"repository_name": self.pypi_store.repository}],
            tags=get_tags("codeartifact"),
            opts=data_resource_options(),
        )
