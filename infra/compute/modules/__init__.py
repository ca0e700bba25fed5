"""Compute stack modules: everything that runs code and can be redeployed freely."""
