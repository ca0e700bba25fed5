"""Shared builders used by the stacks' modules."""

from .policy_builder import PolicyBuilder, assume_role_policy
from .security_rules import SecurityRuleBuilder

__all__ = ["PolicyBuilder", "SecurityRuleBuilder", "assume_role_policy"]
