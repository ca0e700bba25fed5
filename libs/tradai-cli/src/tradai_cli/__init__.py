"""The ``tradai`` command line."""

__version__ = "0.1.0"
