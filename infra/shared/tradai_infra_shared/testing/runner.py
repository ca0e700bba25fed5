"""Test-side helpers: run a stack program under mocks, load a stack's ``modules`` package.

Whole programs run in a subprocess (see ``harness``); results are cached per
(stack, environment, config, environment variables) for the pytest session, and a
downstream stack's stack references are answered with the exports of its upstream
programs' own mocked runs, so the contract between stacks is exercised end to end.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from ..config import ECR_REPOSITORIES
from ..exports import UPSTREAMS
from ..stack_refs import DEFAULT_ORG


def _find_infra_dir() -> Path:
    override = os.environ.get("TRADAI_INFRA_DIR")
    if override:
        return Path(override).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "compute" / "Pulumi.yaml").is_file() and (parent / "shared").is_dir():
            return parent
    raise RuntimeError("cannot locate infra/; set TRADAI_INFRA_DIR")


INFRA_DIR = _find_infra_dir()
REPO_ROOT = INFRA_DIR.parent
MANIFEST_ENV = "TRADAI_IMAGE_MANIFEST"


@dataclass
class StackRun:
    """What one mocked run of a stack program did."""

    stack: str
    env: str
    ok: bool
    error: str | None
    traceback: str | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    stack_references: list[str] = field(default_factory=list)
    stack_reads: list[dict[str, str]] = field(default_factory=list)
    export_names: list[str] = field(default_factory=list)
    duplicate_exports: list[str] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def require_ok(self) -> StackRun:
        if not self.ok:
            raise AssertionError(f"{self.stack}/{self.env} failed under mocks:\n{self.traceback or self.error}")
        return self

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        """Recorded resources of a Pulumi type token (``aws:lambda/function:Function``)."""
        return [r for r in self.resources if r["type"] == typ]

    def inputs_of(self, typ: str) -> list[dict[str, Any]]:
        return [r["inputs"] for r in self.of_type(typ)]

    def named(self, typ: str, physical_name: str, key: str = "name") -> dict[str, Any]:
        """Inputs of the one resource of ``typ`` whose ``key`` input equals ``physical_name``."""
        matches = [r["inputs"] for r in self.of_type(typ) if r["inputs"].get(key) == physical_name]
        if len(matches) != 1:
            names = sorted(str(r["inputs"].get(key)) for r in self.of_type(typ))
            raise AssertionError(f"expected one {typ} named {physical_name!r}, found {len(matches)}; have {names}")
        return matches[0]


def load_stack_config(stack: str, env: str) -> dict[str, str]:
    """A stack's ``Pulumi.<env>.yaml`` config as the engine passes it (every value a string)."""
    path = INFRA_DIR / stack / f"Pulumi.{env}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    values = data.get("config") or {}
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


def fake_digest(repository: str) -> str:
    return "sha256:" + hashlib.sha256(repository.encode()).hexdigest()


def fake_image_manifest(missing: Iterable[str] = ()) -> dict[str, Any]:
    """An image manifest as the build tool writes it, for every ECR repository but ``missing``."""
    skip = set(missing)
    return {"images": {repo: fake_digest(repo) for repo in ECR_REPOSITORIES if repo not in skip}}


def write_manifest(manifest: Mapping[str, Any]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="image-manifest-", delete=False) as handle:
        json.dump(manifest, handle)
    return handle.name


# Where `cargo xtask` publishing records digests (its images::PUBLISHED_DIR), and the
# registry the mocked compute program deploys from (the mocks' account and region).
PUBLISHED_DIR = INFRA_DIR / "compute" / ".image-manifests"


def mock_registry() -> str:
    from .mocks import ACCOUNT_ID, REGION

    return f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com"


@contextlib.contextmanager
def published_image_manifest(manifest: Mapping[str, Any]) -> Iterator[Path]:
    """Place ``manifest`` where publishing to the mocks' ECR registry records digests, for
    the duration of the block, as ``cargo xtask lambda-bootstrap --registry ecr`` would
    (the folder is created ignoring itself for git, as the tool creates it). The mocks'
    account is fictitious, so no real publish is ever overwritten; the file is removed
    afterwards, and the folder too when the block created it."""
    created = not PUBLISHED_DIR.exists()
    PUBLISHED_DIR.mkdir(parents=True, exist_ok=True)
    ignore = PUBLISHED_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Written by cargo xtask when it publishes images; never committed.\n*\n")
    path = PUBLISHED_DIR / (mock_registry() + ".json")
    path.write_text(json.dumps({"registry": mock_registry(), **manifest}))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        if created:
            ignore.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                PUBLISHED_DIR.rmdir()


_lock = threading.Lock()
_runs: dict[tuple, Future] = {}


def run_stack(
    stack: str,
    env: str,
    *,
    config: Mapping[str, str] | None = None,
    env_vars: Mapping[str, str] | None = None,
    cache: bool = True,
) -> StackRun:
    """Run ``infra/<stack>/__main__.py`` for ``env`` under mocks (cached per arguments).

    ``config`` overrides keys of ``Pulumi.<env>.yaml``; ``env_vars`` are set for the
    program (an empty value unsets). The compute stack gets a complete fake image
    manifest unless ``TRADAI_IMAGE_MANIFEST`` or ``tradai-compute:image_manifest`` is given;
    with ``TRADAI_IMAGE_MANIFEST`` set empty it reads the published manifest, if any.
    ``cache=False`` runs the program afresh, for runs that depend on files outside the
    arguments (a published manifest).
    """
    config = dict(config or {})
    env_vars = dict(env_vars or {})
    if not cache:
        return _execute(stack, env, config, env_vars)
    key = (stack, env, tuple(sorted(config.items())), tuple(sorted(env_vars.items())))
    with _lock:
        future = _runs.get(key)
        owner = future is None
        if owner:
            future = _runs[key] = Future()
    if not owner:
        return future.result()
    try:
        run = _execute(stack, env, config, env_vars)
    except BaseException as exc:
        future.set_exception(exc)
        raise
    future.set_result(run)
    return run


def prewarm(pairs: Iterable[tuple[str, str]], workers: int | None = None) -> None:
    """Run the default program of several (stack, env) pairs concurrently."""
    pairs = list(pairs)

    def run_quietly(pair: tuple[str, str]) -> None:
        # A failure is cached with the run; the test that asks for this run reports it.
        with contextlib.suppress(Exception):
            run_stack(*pair)

    with ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(run_quietly, pairs))


def _execute(stack: str, env: str, overrides: dict[str, str], env_vars: dict[str, str]) -> StackRun:
    stack_dir = INFRA_DIR / stack
    cfg = load_stack_config(stack, env)
    cfg.update(overrides)
    org = cfg.get("tradai:org", DEFAULT_ORG)

    upstream_outputs: dict[str, dict[str, Any]] = {}
    for upstream in UPSTREAMS[stack]:
        upstream_run = run_stack(upstream, env).require_ok()
        upstream_outputs[f"{org}/tradai-{upstream}/{env}"] = upstream_run.exports

    environment = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG") and k != MANIFEST_ENV}
    if stack == "compute" and MANIFEST_ENV not in env_vars and "tradai-compute:image_manifest" not in cfg:
        env_vars = {**env_vars, MANIFEST_ENV: write_manifest(fake_image_manifest())}
    environment.update({k: v for k, v in env_vars.items() if v != ""})
    environment["PULUMI_CONFIG"] = json.dumps(cfg)

    with tempfile.TemporaryDirectory(prefix=f"pulumi-{stack}-{env}-") as tmp:
        request_path, result_path = Path(tmp, "request.json"), Path(tmp, "result.json")
        request_path.write_text(
            json.dumps(
                {
                    "stack_dir": str(stack_dir),
                    "project": f"tradai-{stack}",
                    "env": env,
                    "upstream_outputs": upstream_outputs,
                }
            )
        )
        proc = subprocess.run(
            [sys.executable, "-m", "tradai_infra_shared.testing.harness", str(request_path), str(result_path)],
            cwd=stack_dir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0 or not result_path.exists():
            return StackRun(
                stack,
                env,
                ok=False,
                error=proc.stderr.strip() or f"harness exited {proc.returncode}",
                traceback=proc.stderr,
            )
        data = json.loads(result_path.read_text())
    return StackRun(stack=stack, env=env, **data)


def load_stack_modules(stack: str) -> ModuleType:
    """Import ``infra/<stack>/modules`` as ``tradai_<stack>_modules``.

    Every stack has a top-level package called ``modules``; importing them by that name in
    one process would hand the first stack's package to all the others. Loading each under
    its own name (the modules use relative imports among themselves) avoids that.
    """
    name = f"tradai_{stack}_modules"
    if name in sys.modules:
        return sys.modules[name]
    package_dir = INFRA_DIR / stack / "modules"
    spec = importlib.util.spec_from_file_location(
        name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_stack_module(stack: str, module: str) -> ModuleType:
    """``import_stack_module("compute", "image_manifest")`` -> infra/compute/modules/image_manifest.py."""
    load_stack_modules(stack)
    return importlib.import_module(f"tradai_{stack}_modules.{module}")
