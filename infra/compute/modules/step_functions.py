"""Backtest workflow state machine ``tradai-backtest-<env>``.

Input: ``{"job": <BacktestJob>}``. validate-strategy checks the job; a valid job goes to
backtest-launcher (which records it and queues it for backtest-consumer); a launch that
fails marks the workflow record FAILED through update-status.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from tradai_infra_shared.config import AWS_REGION, get_env_settings, get_resource_name, get_tags
from tradai_infra_shared.core import PolicyBuilder, assume_role_policy

RETRY = [
    {
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    }
]


def state_machine_arn(account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """Known before the machine exists, so roles can name it without a dependency cycle."""
    return pulumi.Output.concat(
        "arn:aws:states:", AWS_REGION, ":", account_id, ":stateMachine:", get_resource_name("backtest")
    )


def definition(validate: str, launch: str, update_status: str) -> str:
    def invoke(
        function_arn: str, payload: dict, result_selector: dict, result_path: str, next_state: str, catch: bool = True
    ) -> dict:
        state = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function_arn, "Payload": payload},
            "ResultSelector": result_selector,
            "ResultPath": result_path,
            "Retry": RETRY,
            "Next": next_state,
        }
        if catch:
            state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MarkFailed"}]
        return state

    return json.dumps(
        {
            "Comment": "TradAI backtest workflow: validate, then launch",
            "StartAt": "ValidateStrategy",
            "States": {
                "ValidateStrategy": invoke(
                    validate,
                    {"job.$": "$.job"},
                    {"valid.$": "$.Payload.valid", "errors.$": "$.Payload.errors"},
                    "$.validation",
                    "IsValid",
                    catch=False,
                ),
                "IsValid": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.validation.valid", "BooleanEquals": True, "Next": "LaunchBacktest"}],
                    "Default": "Rejected",
                },
                "LaunchBacktest": invoke(
                    launch, {"job.$": "$.job"}, {"accepted.$": "$.Payload.accepted"}, "$.launch", "WasAccepted"
                ),
                "WasAccepted": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.launch.accepted", "BooleanEquals": True, "Next": "Launched"}],
                    "Default": "Rejected",
                },
                "MarkFailed": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": update_status,
                        "Payload": {"job_id.$": "$.job.job_id", "state": "FAILED", "error.$": "$.error.Cause"},
                    },
                    "ResultPath": None,
                    "Retry": RETRY,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.markError", "Next": "Failed"}],
                    "Next": "Failed",
                },
                "Launched": {"Type": "Succeed"},
                "Rejected": {"Type": "Fail", "Error": "BacktestRejected", "Cause": "The backtest job was rejected"},
                "Failed": {"Type": "Fail", "Error": "BacktestLaunchFailed", "Cause": "Launching the backtest failed"},
            },
        },
        sort_keys=True,
    )


class BacktestStateMachine:
    def __init__(self, functions: dict[str, aws.lambda_.Function]) -> None:
        settings = get_env_settings()
        used = [functions["validate-strategy"], functions["backtest-launcher"], functions["update-status"]]
        self.log_group = aws.cloudwatch.LogGroup(
            "backtest-workflow-logs",
            name=f"/aws/vendedlogs/states/{get_resource_name('backtest')}",
            retention_in_days=settings.log_retention_days,
            tags=get_tags("backtest"),
        )
        self.role = aws.iam.Role(
            "backtest-workflow-role",
            name=get_resource_name("backtest-workflow"),
            assume_role_policy=assume_role_policy("states.amazonaws.com"),
            tags=get_tags("backtest"),
        )
        policy = (
            PolicyBuilder()
            .allow(["lambda:InvokeFunction"], [f.arn for f in used], sid="InvokeWorkflowLambdas")
            # Log delivery and X-Ray APIs have no resource-level permissions.
            .allow(
                [
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups",
                ],
                ["*"],
                sid="LogDelivery",
            )
            .allow(
                [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                ["*"],
                sid="Tracing",
            )
        )
        role_policy = aws.iam.RolePolicy("backtest-workflow-policy", role=self.role.id, policy=policy.to_json())
        self.state_machine = aws.sfn.StateMachine(
            "backtest-workflow",
            name=get_resource_name("backtest"),
            type="STANDARD",
            role_arn=self.role.arn,
            definition=pulumi.Output.all(*[f.arn for f in used]).apply(lambda arns: definition(*arns)),
            logging_configuration={
                "log_destination": pulumi.Output.concat(self.log_group.arn, ":*"),
                "include_execution_data": False,
                "level": "ERROR",
            },
            tracing_configuration={"enabled": True},
            tags=get_tags("backtest"),
            opts=pulumi.ResourceOptions(depends_on=[role_policy]),
        )
