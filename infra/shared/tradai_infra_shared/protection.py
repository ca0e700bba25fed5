"""What ``pulumi destroy`` may not take: the one protection policy for data-bearing resources.

Every stack passes the options of its data-bearing resources through
``data_resource_options()``, whatever stack the resource lives in. The tests enumerate what
each program registers under mocks by type (``DATA_RESOURCE_TYPES``) and fail on any
resource of those types that lacks the policy, so a new table, bucket or repository cannot
be added unprotected.

Pulumi offers two resource options, with different outcomes (Pulumi's docs on ``protect``
and ``retainOnDelete``):

- ``protect``: the engine refuses to delete the resource, in a replacement or a
  ``pulumi destroy`` alike. The preview a destroy runs first fails, naming it; a destroy
  forced through without one (``--skip-preview``) fails at it, though unprotected resources
  deleted before it are gone. It is lifted only on purpose (``protect=False`` and
  ``pulumi up``, or ``pulumi state unprotect``); ``pulumi destroy --exclude-protected``
  deletes everything else.
- ``retain_on_delete``: the engine never calls the provider's delete. A destroy succeeds,
  drops the resource from the state and leaves it in AWS, unmanaged.

The choice, per environment:

- **dev and staging: protect.** The persistent stack is never destroyed in any environment;
  refusing says so, names the resources, and leaves the state and AWS in step.
  ``retain_on_delete`` alone would let the destroy "succeed" and orphan every table, bucket
  and repository: the next ``pulumi up`` would then fail on names that already exist, and
  create a second Cognito user pool (its name is not unique) with the users left behind in
  the orphan. An engineer who really wants a clean environment unprotects first, and the
  delete is then real.
- **prod: protect and retain_on_delete.** Protect refuses as above; retaining is a second
  lock, so even after ``pulumi state unprotect`` a destroy or a replacement leaves the data
  in AWS. Deleting production data is a deliberate act in AWS, never a Pulumi side effect.
  (AWS's own deletion protection, ``EnvironmentSettings.deletion_protection``, is on in
  prod as well.)

Both options are inherited by child resources (a bucket's encryption, policy and lifecycle;
a repository's lifecycle policy), which are parented to their data resource. Pulumi records
both per resource in the stack's state (``protect`` and ``retainOnDelete`` in
``pulumi stack export``), which is where the build tool reads what a destroy will leave.

The MLflow database is not in this policy: foundation must stay destroyable in dev, so its
RDS instance always keeps a final snapshot on delete instead (and is protected in prod
through ``deletion_protection``; see foundation's ``rds.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from .config import ENVIRONMENTS, _env


@dataclass(frozen=True)
class DataProtection:
    """The Pulumi options every data-bearing resource of an environment gets."""

    protect: bool
    retain_on_delete: bool

    @property
    def survives_destroy(self) -> bool:
        return self.protect or self.retain_on_delete


DATA_PROTECTION: dict[str, DataProtection] = {
    "dev": DataProtection(protect=True, retain_on_delete=False),
    "staging": DataProtection(protect=True, retain_on_delete=False),
    "prod": DataProtection(protect=True, retain_on_delete=True),
}
if set(DATA_PROTECTION) != set(ENVIRONMENTS):
    raise RuntimeError(f"DATA_PROTECTION must cover exactly the environments {', '.join(ENVIRONMENTS)}")

#: Pulumi types of the data-bearing resources: every resource of these types, in any stack,
#: must be created with ``data_resource_options()`` (the tests enumerate them by type).
#: CodeArtifact is included because its repository holds the published tradai-strategy
#: versions, and deleting the domain deletes every repository in it.
DATA_RESOURCE_TYPES: frozenset[str] = frozenset(
    {
        "aws:dynamodb/table:Table",
        "aws:s3/bucket:Bucket",
        "aws:ecr/repository:Repository",
        "aws:cognito/userPool:UserPool",
        "aws:codeartifact/domain:Domain",
        "aws:codeartifact/repository:Repository",
    }
)


def data_protection(env: str | None = None) -> DataProtection:
    """The protection policy of the current stack's environment (or ``env``)."""
    return DATA_PROTECTION[_env(env)]


def data_resource_options(opts: pulumi.ResourceOptions | None = None, env: str | None = None) -> pulumi.ResourceOptions:
    """``opts`` (parent, depends_on, ...) with the environment's protection for a data resource.

    The policy wins over anything ``opts`` says about ``protect`` or ``retain_on_delete``:
    a data resource cannot opt out here.
    """
    policy = data_protection(env)
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(protect=policy.protect, retain_on_delete=policy.retain_on_delete)
    )
