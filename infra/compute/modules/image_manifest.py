"""Image digests handed over by the build tool.

``cargo xtask lambda-bootstrap`` (and the service pushes) write a JSON manifest of what
they pushed, keyed by ECR repository name::

    {"images": {"tradai/lambda-health-check": "sha256:<64 hex>", "tradai/backend": "sha256:..."}}

Its path is taken from the ``TRADAI_IMAGE_MANIFEST`` environment variable, else from config
``tradai-compute:image_manifest`` (relative to infra/compute). Lambda functions are pinned to
these digests, so a deploy runs exactly the images that were built and pushed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

MANIFEST_ENV = "TRADAI_IMAGE_MANIFEST"
CONFIG_KEY = "image_manifest"
FIX = "run `cargo xtask lambda-bootstrap` to build and push the Lambda images and write the manifest"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageManifestError(RuntimeError):
    """The image manifest is missing, malformed or lacks a required digest."""


def manifest_path(config_value: str | None = None, base_dir: Path | None = None) -> Path | None:
    """Where the manifest is: the environment variable wins over stack config."""
    raw = os.environ.get(MANIFEST_ENV) or config_value
    if not raw:
        return None
    path = Path(raw).expanduser()
    return path if path.is_absolute() else (base_dir or Path.cwd()) / path


def load_image_manifest(path: Path | None) -> dict[str, str]:
    """Read and validate the manifest; returns ECR repository name -> digest."""
    if path is None:
        raise ImageManifestError(
            f"no image manifest: set {MANIFEST_ENV} (or tradai-compute:{CONFIG_KEY}) to the manifest "
            f"the build tool writes; {FIX}"
        )
    if not path.is_file():
        raise ImageManifestError(f"image manifest {path} does not exist; {FIX}")
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
