"""Image digests handed over by the build tool.

The manifest is a JSON file keyed by ECR repository name::

    {"images": {"tradai/lambda-health-check": "sha256:<64 hex>", "tradai/backend": "sha256:..."}}

Where it comes from, first match wins:

1. ``TRADAI_IMAGE_MANIFEST``: ``cargo xtask infra-preview``/``infra-up``/``infra-bootstrap``
   set it to the digests they just checked in the registry (at ``--image-tag``).
2. Config ``tradai-compute:image_manifest`` (relative to infra/compute).
3. The *published manifest* of the ECR registry this stack deploys from (account of the
   caller, ``aws:region``): ``infra/compute/.image-manifests/<account>.dkr.ecr.<region>.amazonaws.com.json``.
   Publishing writes it: ``cargo xtask lambda-bootstrap --registry ecr``,
   ``lambda-push-all``, ``service-push``/``service-push-all`` record every image they make
   ``latest`` there, so ``pulumi up`` run by hand in infra/compute after a publish deploys
   exactly what was pushed.

Lambda functions (and, with ``pin_service_images``, the services) are pinned to these
digests, so a deploy runs exactly the images that were built and pushed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

MANIFEST_ENV = "TRADAI_IMAGE_MANIFEST"
CONFIG_KEY = "image_manifest"
# Where publishing records digests, beside this program (the tool's images::PUBLISHED_DIR).
PUBLISHED_DIR = Path(__file__).resolve().parent.parent / ".image-manifests"
FIX = (
    "publish the images with `cargo xtask lambda-bootstrap --registry ecr` (Lambda images) and "
    "`cargo xtask service-push-all --registry ecr` (service images), which record their digests in "
    f"infra/compute/.image-manifests/<registry>.json, read when {MANIFEST_ENV} is unset; or deploy with "
    f"`cargo xtask infra-up compute <env>`, which checks the images and hands their digests over in {MANIFEST_ENV}"
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ImageManifestError(RuntimeError):
    """The image manifest is missing, malformed or lacks a required digest."""


def registry_file_name(registry: str) -> str:
    """The published manifest's file name for a registry: the build tool's rule
    (``images::published_file_name``): every character but ASCII letters, digits, ``.``,
    ``_`` and ``-`` becomes ``_``."""
    return _UNSAFE.sub("_", registry) + ".json"


def ecr_registry(account_id: str, region: str) -> str:
    """The ECR registry host of an account and region, as ECR's login names it."""
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


def published_manifest_path(registry: str, directory: Path | None = None) -> Path:
    """The manifest publishing to ``registry`` writes."""
    return (directory or PUBLISHED_DIR) / registry_file_name(registry)


def deployment_registry() -> str:
    """The ECR registry this stack deploys from: the caller's account, the stack's region."""
    import pulumi
    import pulumi_aws as aws

    region = pulumi.Config("aws").get("region")
    if not region:
        found = aws.get_region()
        region = getattr(found, "region", None) or found.name
    return ecr_registry(aws.get_caller_identity().account_id, region)


def manifest_path(
    config_value: str | None = None,
    base_dir: Path | None = None,
    registry: Callable[[], str] | None = None,
) -> Path | None:
    """Where the manifest is: the environment variable, else stack config, else the
    published manifest of the registry the stack deploys from (``registry`` names it;
    default: :func:`deployment_registry`)."""
    raw = os.environ.get(MANIFEST_ENV) or config_value
    if raw:
        path = Path(raw).expanduser()
        return path if path.is_absolute() else (base_dir or Path.cwd()) / path
    return published_manifest_path((registry or deployment_registry)())


def load_image_manifest(path: Path | None) -> dict[str, str]:
    """Read and validate the manifest; returns ECR repository name -> digest."""
    if path is None:
        raise ImageManifestError(
            f"no image manifest: set {MANIFEST_ENV} (or tradai-compute:{CONFIG_KEY}) to the manifest "
            f"the build tool writes; {FIX}"
        )
    if not path.is_file():
        published = path.parent == PUBLISHED_DIR
        what = (
            f"{MANIFEST_ENV} is unset and no images were published to {path.stem} from this checkout (no {path})"
            if published
            else f"image manifest {path} does not exist"
        )
        raise ImageManifestError(f"{what}; {FIX}")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ImageManifestError(f"image manifest {path} is not valid JSON ({exc}); {FIX}") from exc
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        raise ImageManifestError(f'image manifest {path} has no "images" object; {FIX}')
    bad = sorted(repo for repo, digest in images.items() if not isinstance(digest, str) or not DIGEST.match(digest))
    if bad:
        raise ImageManifestError(
            f"image manifest {path} has malformed digests (expected sha256:<64 hex>) for: {', '.join(bad)}; {FIX}"
        )
    return dict(images)


def require_digests(
    images: Mapping[str, str], repositories: Iterable[str], source: Path | None = None
) -> dict[str, str]:
    """Digests for every repository, or one error naming every missing image."""
    wanted = list(repositories)
    missing = [repo for repo in wanted if repo not in images]
    if missing:
        where = f"image manifest {source}" if source else "the image manifest"
        raise ImageManifestError(f"{where} has no digest for {len(missing)} image(s): {', '.join(missing)}; {FIX}")
    return {repo: images[repo] for repo in wanted}
