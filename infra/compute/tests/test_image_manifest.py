"""Where the compute program finds its image digests when ``TRADAI_IMAGE_MANIFEST`` is
unset: the manifest ``cargo xtask`` publishing records per registry, under
infra/compute/.image-manifests/ (see xtask/pulumi/src/images.rs)."""

from __future__ import annotations

from tradai_infra_shared.config import LAMBDA_NAMES
from tradai_infra_shared.testing import MANIFEST_ENV, fake_digest, fake_image_manifest, import_stack_module, run_stack
from tradai_infra_shared.testing.runner import PUBLISHED_DIR, mock_registry, published_image_manifest

STACK = "compute"
FUNCTION = "aws:lambda/function:Function"


def test_file_names_follow_the_tools_rule() -> None:
    # The same vectors as images::tests::published_file_names_keep_hosts_readable_and_replace_the_rest.
    manifest = import_stack_module(STACK, "image_manifest")
    assert manifest.registry_file_name("123456789012.dkr.ecr.eu-central-1.amazonaws.com") == (
        "123456789012.dkr.ecr.eu-central-1.amazonaws.com.json"
    )
    assert manifest.registry_file_name("127.0.0.1:5000") == "127.0.0.1_5000.json"
    assert manifest.registry_file_name("registry/../x") == "registry_.._x.json"
    assert manifest.PUBLISHED_DIR == PUBLISHED_DIR


def test_the_published_manifest_is_found_when_the_variable_and_config_are_unset(monkeypatch, tmp_path) -> None:
    manifest = import_stack_module(STACK, "image_manifest")
    monkeypatch.delenv(MANIFEST_ENV, raising=False)
    registry = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    assert manifest.manifest_path(None, registry=lambda: registry) == PUBLISHED_DIR / f"{registry}.json"
    # The variable and the config still win, in that order.
    assert manifest.manifest_path("m.json", base_dir=tmp_path, registry=lambda: registry) == tmp_path / "m.json"
    monkeypatch.setenv(MANIFEST_ENV, str(tmp_path / "env.json"))
    assert manifest.manifest_path("m.json", base_dir=tmp_path, registry=lambda: registry) == tmp_path / "env.json"


def test_pulumi_up_by_hand_after_a_publish_pins_the_published_digests() -> None:
    # What `cargo xtask lambda-bootstrap --registry ecr` leaves for the account and region
    # the program deploys to; no TRADAI_IMAGE_MANIFEST, no config.
    images = fake_image_manifest()
    images["images"]["tradai/lambda-health-check"] = "sha256:" + "7" * 64
    with published_image_manifest(images) as path:
        assert path.name == f"{mock_registry()}.json"
        run = run_stack(STACK, "dev", env_vars={MANIFEST_ENV: ""}, cache=False).require_ok()
    functions = {f["name"]: f for f in run.inputs_of(FUNCTION) if f.get("packageType") == "Image"}
    assert len(functions) == len(LAMBDA_NAMES)
    assert functions["tradai-health-check-dev"]["imageUri"].endswith("@sha256:" + "7" * 64)
    assert functions["tradai-drift-monitor-dev"]["imageUri"].endswith(f"@{fake_digest('tradai/lambda-drift-monitor')}")
    assert not path.exists(), "the published manifest of the mocks' registry is removed again"


def test_without_a_publish_the_error_names_the_registry_file_and_both_fixes() -> None:
    run = run_stack(STACK, "staging", env_vars={MANIFEST_ENV: ""}, cache=False)
    assert not run.ok
    assert f"no images were published to {mock_registry()}" in run.error
    assert f"{PUBLISHED_DIR / mock_registry()}.json" in run.error
    assert "cargo xtask lambda-bootstrap --registry ecr" in run.error
    assert "cargo xtask infra-up compute <env>" in run.error and MANIFEST_ENV in run.error
    assert run.resources == [], "nothing may be declared when the manifest is missing"
