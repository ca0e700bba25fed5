"""WAF web ACL with rate limiting and AWS managed rule groups.

WAF cannot be attached to an HTTP API, so the web ACL protects the ALB behind it: every
request, whether it comes through API Gateway's VPC link or straight to the ALB, passes
it. API traffic is rate-limited per client (X-Forwarded-For, which API Gateway sets);
direct traffic per source IP.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import get_resource_name, get_tags

MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)


def _visibility(name: str) -> dict:
    return {"cloudwatch_metrics_enabled": True, "metric_name": name, "sampled_requests_enabled": True}


class Waf:
    def __init__(self, alb_arn: pulumi.Input[str], rate_limit: int) -> None:
        name = get_resource_name("waf")
        rules = [
            {
                "name": "rate-limit-client-ip",
                "priority": 1,
                "action": {"block": {}},
                "statement": {
                    "rate_based_statement": {
                        "limit": rate_limit,
                        "aggregate_key_type": "FORWARDED_IP",
                        "forwarded_ip_config": {"header_name": "X-Forwarded-For", "fallback_behavior": "NO_MATCH"},
                    }
                },
                "visibility_config": _visibility("rate-limit-client-ip"),
            },
            {
                "name": "rate-limit-source-ip",
                "priority": 2,
                "action": {"block": {}},
                # The VPC link's few addresses carry every API client, hence the higher limit.
                "statement": {"rate_based_statement": {"limit": rate_limit * 10, "aggregate_key_type": "IP"}},
                "visibility_config": _visibility("rate-limit-source-ip"),
            },
        ]
        for offset, group in enumerate(MANAGED_RULE_GROUPS, start=10):
            rules.append(
                {
                    "name": group,
                    "priority": offset,
                    "override_action": {"none": {}},
                    "statement": {"managed_rule_group_statement": {"vendor_name": "AWS", "name": group}},
                    "visibility_config": _visibility(group),
                }
            )
        self.web_acl = aws.wafv2.WebAcl(
            "web-acl",
            name=name,
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=rules,
            visibility_config=_visibility(name),
            tags=get_tags("waf"),
        )
        aws.wafv2.WebAclAssociation("alb-waf", resource_arn=alb_arn, web_acl_arn=self.web_acl.arn)
