"""ECR repositories for every image the build tool publishes (see config.ECR_REPOSITORIES).

Repository names carry no environment (``tradai/backend``), so they are account-wide: the
stack of the environment that owns the account creates them. A stack sharing an account
with that owner sets ``tradai-persistent:manage_ecr_repositories: false`` and only looks
the repositories up. Owned repositories are kept on destroy in every environment
(``protection.data_resource_options``).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import ECR_REPOSITORIES, get_tags
from tradai_infra_shared.protection import data_resource_options

LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Expire untagged images after 7 days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 7,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": "Keep the 50 most recent images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50},
                "action": {"type": "expire"},
            },
        ]
    }
)


class EcrRepositories:
    def __init__(self, manage: bool = True) -> None:
        self.urls: dict[str, pulumi.Output[str]] = {}
        self.arns: dict[str, pulumi.Output[str]] = {}
        for repo in ECR_REPOSITORIES:
            logical = repo.replace("/", "-")
            if manage:
                repository = aws.ecr.Repository(
                    logical,
                    name=repo,
                    # Services are redeployed through their mutable :latest tag; Lambdas are
                    # pinned by digest, so mutability never changes what a function runs.
                    image_tag_mutability="MUTABLE",
                    image_scanning_configuration={"scan_on_push": True},
                    encryption_configurations=[{"encryption_type": "AES256"}],
                    force_delete=False,
                    tags=get_tags(repo.split("/", 1)[1]),
                    opts=data_resource_options(),
                )
                aws.ecr.LifecyclePolicy(
                    f"{logical}-lifecycle",
                    repository=repository.name,
                    policy=LIFECYCLE_POLICY,
                    opts=pulumi.ResourceOptions(parent=repository),
                )
                self.urls[repo], self.arns[repo] = repository.repository_url, repository.arn
            else:
                found = aws.ecr.get_repository_output(name=repo)
                self.urls[repo], self.arns[repo] = found.repository_url, found.arn

    @property
    def url_map(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**self.urls)

    @property
    def arn_map(self) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(**self.arns)
