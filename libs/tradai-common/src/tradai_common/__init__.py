"""Shared building blocks for TradAI services, libraries and Lambda functions.

Import the submodules directly (``from tradai_common.settings import Settings``):
the package root deliberately re-exports nothing.
"""

__version__ = "0.1.0"
