"""Unit-test support for the TradAI Pulumi stacks (Pulumi mocks; no CLI, no AWS).

Attributes are loaded lazily: the harness subprocess must configure the Pulumi runtime
before ``tradai_infra_shared.config`` (which reads the stack name at import) is imported.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ACCOUNT_ID": "mocks",
    "REGION": "mocks",
    "TradaiMocks": "mocks",
    "TradaiMonitor": "mocks",
    "install_mocks": "mocks",
    "INFRA_DIR": "runner",
    "MANIFEST_ENV": "runner",
    "REPO_ROOT": "runner",
    "StackRun": "runner",
    "fake_digest": "runner",
    "fake_image_manifest": "runner",
    "import_stack_module": "runner",
    "load_stack_config": "runner",
    "load_stack_modules": "runner",
    "prewarm": "runner",
    "run_stack": "runner",
    "write_manifest": "runner",
    "contract_problems": "contract",
    "stack_ref_literals": "contract",
    "unknown_input_keys": "schema",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
