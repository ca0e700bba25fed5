"""TradAI data-collection service."""

__version__ = "0.1.0"
