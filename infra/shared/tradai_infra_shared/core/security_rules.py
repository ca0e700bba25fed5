"""Security group rules as one declarative list per group."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class _Rule:
    direction: str  # "ingress" | "egress"
    from_port: int
    to_port: int
    protocol: str
    description: str
    cidr: str | None = None
    peer_sg: pulumi.Input[str] | None = None
    prefix_list: pulumi.Input[str] | None = None


class SecurityRuleBuilder:
    """Builds ``aws.vpc.SecurityGroupIngressRule``/``EgressRule`` resources for one group.

    Every rule carries a description; nothing is opened implicitly (no default
    allow-all egress unless ``egress_all`` is asked for).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._rules: list[_Rule] = []

    def ingress_from_sg(
        self, port: int, peer_sg: pulumi.Input[str], description: str, to_port: int | None = None
    ) -> SecurityRuleBuilder:
        self._rules.append(_Rule("ingress", port, to_port or port, "tcp", description, peer_sg=peer_sg))
        return self

    def ingress_from_cidr(
        self, port: int, cidr: str, description: str, to_port: int | None = None
    ) -> SecurityRuleBuilder:
        self._rules.append(_Rule("ingress", port, to_port or port, "tcp", description, cidr=cidr))
        return self

    def ingress_all_from_cidr(self, cidr: str, description: str) -> SecurityRuleBuilder:
        """All protocols from a CIDR (a NAT instance forwarding the VPC's traffic)."""
        self._rules.append(_Rule("ingress", -1, -1, "-1", description, cidr=cidr))
        return self

    def egress_to_sg(
        self, port: int, peer_sg: pulumi.Input[str], description: str, to_port: int | None = None
    ) -> SecurityRuleBuilder:
        self._rules.append(_Rule("egress", port, to_port or port, "tcp", description, peer_sg=peer_sg))
        return self

    def egress_to_cidr(self, port: int, cidr: str, description: str, to_port: int | None = None) -> SecurityRuleBuilder:
        self._rules.append(_Rule("egress", port, to_port or port, "tcp", description, cidr=cidr))
        return self

    def egress_to_prefix_list(
        self, port: int, prefix_list_id: pulumi.Input[str], description: str
    ) -> SecurityRuleBuilder:
        self._rules.append(_Rule("egress", port, port, "tcp", description, prefix_list=prefix_list_id))
        return self

    def egress_all(self, description: str = "All outbound traffic") -> SecurityRuleBuilder:
        self._rules.append(_Rule("egress", -1, -1, "-1", description, cidr="0.0.0.0/0"))
        return self

    def __len__(self) -> int:
        return len(self._rules)

    def build(
        self, security_group_id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
    ) -> list[pulumi.CustomResource]:
        """Create one rule resource per declared rule."""
        resources: list[pulumi.CustomResource] = []
        for index, rule in enumerate(self._rules):
            ports = {} if rule.protocol == "-1" else {"from_port": rule.from_port, "to_port": rule.to_port}
            args = dict(
                security_group_id=security_group_id,
                ip_protocol=rule.protocol,
                description=rule.description,
                cidr_ipv4=rule.cidr,
                referenced_security_group_id=rule.peer_sg,
                prefix_list_id=rule.prefix_list,
                **ports,
            )
            cls = aws.vpc.SecurityGroupIngressRule if rule.direction == "ingress" else aws.vpc.SecurityGroupEgressRule
            resources.append(cls(f"{self.name}-{rule.direction}-{index}", opts=opts, **args))
        return resources
