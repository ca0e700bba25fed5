"""Pulumi unit-test mocks that fake AWS just enough for the TradAI programs.

Every registered resource is recorded (type, logical name, inputs, the options that decide
what a destroy leaves, ``protect`` and ``retain_on_delete``, and its parent's URN) so tests
can assert on what a program would create; stack references answer with the outputs given
to the mocks.
"""

from __future__ import annotations

import threading
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

ACCOUNT_ID = "123456789012"
REGION = "eu-central-1"


def _service_of(typ: str) -> str:
    # "aws:ec2/vpc:Vpc" -> "ec2"
    return typ.split(":")[1].split("/")[0] if typ.startswith("aws:") else "pulumi"


#: The options of the registration in progress on this thread (see TradaiMonitor).
_registration = threading.local()
NO_OPTIONS: dict[str, Any] = {"protect": False, "retain_on_delete": False, "parent": None}


class TradaiMonitor(MockMonitor):
    """Pulumi's mock monitor, passing on the resource options the mocks otherwise never see.

    ``Mocks.new_resource`` gets only the type, name and inputs; ``protect``,
    ``retainOnDelete`` and the parent travel in the register request. They are kept for the
    thread while the base class calls ``new_resource`` on that same thread, so concurrent
    registrations cannot mix them up. ``protect`` arrives as the SDK resolved it (inherited
    from the parent when unset); ``retainOnDelete`` is inherited by the engine, so a child
    records only what it set itself.
    """

    def RegisterResource(self, request: Any) -> Any:
        _registration.options = {
            "protect": bool(request.protect),
            "retain_on_delete": bool(request.retainOnDelete),
            "parent": request.parent or None,
        }
        try:
            return super().RegisterResource(request)
        finally:
            _registration.options = None


def install_mocks(mocks: TradaiMocks, project: str, stack: str) -> None:
    """Point the Pulumi runtime at ``mocks`` through the option-recording monitor."""
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=TradaiMonitor(mocks))


class TradaiMocks(pulumi.runtime.Mocks):
    def __init__(self, stack_outputs: dict[str, dict[str, Any]] | None = None) -> None:
        self.stack_outputs = stack_outputs or {}
        self.resources: list[dict[str, Any]] = []
        self.stack_references: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        if typ == "pulumi:pulumi:StackReference":
            target = inputs.get("name") or args.resource_id or name
            self.stack_references.append(target)
            if target not in self.stack_outputs:
                raise KeyError(f"no outputs recorded for stack {target!r}")
            return target, {"name": target, "outputs": self.stack_outputs[target], "secretOutputNames": []}

        options = getattr(_registration, "options", None) or NO_OPTIONS
        self.resources.append({"type": typ, "name": name, "inputs": inputs, **options})
        physical = inputs.get("name") or inputs.get("identifier") or name
        state: dict[str, Any] = dict(inputs)
        service = _service_of(typ)
        state.setdefault("name", physical)
        state.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{typ.rsplit(':', 1)[-1].lower()}/{physical}")
        resource_id = f"{name}-id"

        if typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{physical}"
        elif typ == "aws:s3/bucket:Bucket":
            state["bucket"] = inputs.get("bucket") or name
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"
            resource_id = state["bucket"]
        elif typ == "aws:dynamodb/table:Table":
            state["arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{physical}"
            resource_id = physical
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            state["dnsName"] = f"{physical}-1234.{REGION}.elb.amazonaws.com"
            state["arnSuffix"] = f"app/{physical}/0123456789abcdef"
            state["zoneId"] = "Z215JYRZR1TBD5"
        elif typ == "aws:lb/targetGroup:TargetGroup":
            state["arnSuffix"] = f"targetgroup/{physical}/0123456789abcdef"
        elif typ == "aws:sqs/queue:Queue":
            state["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{physical}"
            state["arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{physical}"
        elif typ == "aws:rds/instance:Instance":
            state["address"] = f"{physical}.abc.{REGION}.rds.amazonaws.com"
            state["port"] = int(inputs.get("port", 5432))
            state["endpoint"] = f"{state['address']}:{state['port']}"
            if inputs.get("manageMasterUserPassword"):
                state["masterUserSecrets"] = [
                    {
                        "secretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:rds!db-{physical}",
                        "secretStatus": "active",
                        "kmsKeyId": "aws/secretsmanager",
                    }
                ]
        elif typ == "aws:cognito/userPool:UserPool":
            resource_id = f"{REGION}_mockpool"
            state["endpoint"] = f"cognito-idp.{REGION}.amazonaws.com/{resource_id}"
        elif typ == "aws:apigatewayv2/api:Api":
            resource_id = "mockapi"
            state["apiEndpoint"] = f"https://{resource_id}.execute-api.{REGION}.amazonaws.com"
            state["executionArn"] = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{resource_id}"
        elif typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}"
        elif typ == "aws:sns/topic:Topic":
            state["arn"] = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{physical}"
        elif typ == "aws:sfn/stateMachine:StateMachine":
            state["arn"] = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{physical}"
        elif typ == "aws:lambda/function:Function":
            state["arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{physical}"
            state["invokeArn"] = f"arn:aws:apigateway:{REGION}:lambda:path/functions/{state['arn']}/invocations"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{physical}"
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/test",
                "userId": "AIDATEST",
                "id": ACCOUNT_ID,
            }
        if token == "aws:index/getRegion:getRegion":
            return {"name": REGION, "region": REGION, "id": REGION, "endpoint": f"ec2.{REGION}.amazonaws.com"}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"], "id": REGION}
        if token == "aws:ecr/getRepository:getRepository":
            name = args.args["name"]
            return {
                "name": name,
                "id": name,
                "arn": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{name}",
                "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{name}",
                "registryId": ACCOUNT_ID,
            }
        return {}
