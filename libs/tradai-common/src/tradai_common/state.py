"""DynamoDB state helpers.

:class:`WorkflowStore` keeps one item per backtest job in the workflow-state table
(partition key ``job_id``). Status changes are conditional updates: a record only
moves along the transitions :class:`~tradai_common.models.WorkflowState` allows, so
two writers racing on the same job cannot move a finished job back to RUNNING.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

import tradai_common.aws as aws
from tradai_common.models import BacktestJob, WorkflowRecord, WorkflowState, utc_now
from tradai_common.settings import Settings


class StateConflictError(RuntimeError):
    """A conditional write lost: the record is not in a state that allows it."""


class WorkflowNotFoundError(LookupError):
    """No workflow record has that job id."""


def to_dynamo(value: Any) -> Any:
    """Convert floats (recursively) to ``Decimal``, which DynamoDB requires."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Convert ``Decimal`` (recursively) back to ``int`` or ``float``."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def create_table(dynamodb: Any, table_name: str, key: str) -> Any:
    """Create an on-demand table with a string partition key (local dev and tests).

    In AWS the tables come from the persistent Pulumi stack; this helper lets a
    developer point ``AWS_ENDPOINT_URL`` at a moto server and get the same schema.
    """
    table = dynamodb.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table.wait_until_exists()
    return table


def scan_all(table: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Yield every item of a (filtered) scan, following pagination."""
    while True:
        page = table.scan(**kwargs)
        for item in page.get("Items", []):
            yield from_dynamo(item)
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def _is_conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class WorkflowStore:
    """Workflow records in the workflow-state DynamoDB table."""

    KEY = "job_id"

    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._table: Any | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> WorkflowStore:
        settings = settings or Settings.from_env()
        return cls(settings.workflow_table, aws.resource("dynamodb", settings))

    @property
    def table(self) -> Any:
        if self._table is None:
            if self._dynamodb is None:
                self._dynamodb = aws.resource("dynamodb")
            self._table = self._dynamodb.Table(self.table_name)
        return self._table

    def create_table(self) -> None:
        if self._dynamodb is None:
            self._dynamodb = aws.resource("dynamodb")
        self._table = create_table(self._dynamodb, self.table_name, self.KEY)

    def put(self, job: BacktestJob, state: WorkflowState = WorkflowState.PENDING) -> WorkflowRecord:
        """Insert a new record; raises :class:`StateConflictError` if the id exists."""
        record = WorkflowRecord(job=job, state=state)
        try:
            self.table.put_item(
                Item=to_dynamo(record.to_dict()),
                ConditionExpression=Attr(self.KEY).not_exists(),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                raise StateConflictError(f"workflow {job.job_id} already exists") from exc
            raise
        return record

    def get(self, job_id: str) -> WorkflowRecord | None:
        item = self.table.get_item(Key={self.KEY: job_id}, ConsistentRead=True).get("Item")
        return None if item is None else WorkflowRecord.from_dict(from_dynamo(item))

    def require(self, job_id: str) -> WorkflowRecord:
        record = self.get(job_id)
        if record is None:
            raise WorkflowNotFoundError(f"workflow {job_id} not found")
        return record

    def update_status(
        self,
        job_id: str,
        new_state: WorkflowState | str,
        *,
        expected: WorkflowState | str | None = None,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> WorkflowRecord:
        """Move a record to ``new_state`` if its current state allows it.

        ``expected`` narrows the allowed current state to exactly one. Raises
        :class:`WorkflowNotFoundError` or :class:`StateConflictError`.
        """
        target = WorkflowState.parse(new_state)
        sources = target.allowed_sources()
        if expected is not None:
            wanted = WorkflowState.parse(expected)
            if wanted not in sources:
                raise StateConflictError(f"transition {wanted.value} -> {target.value} is invalid")
            sources = (wanted,)
        if not sources:
            raise StateConflictError(f"no state may transition to {target.value}")

        names = {"#state": "state"}
        values: dict[str, Any] = {":new": target.value, ":now": utc_now()}
        assignments = ["#state = :new", "updated_at = :now"]
        if result is not None:
            values[":result"] = to_dynamo(dict(result))
            assignments.append("#result = :result")
            names["#result"] = "result"
        if error is not None:
            values[":error"] = error
            assignments.append("#error = :error")
            names["#error"] = "error"
        placeholders = []
        for i, source in enumerate(sources):
            values[f":s{i}"] = source.value
            placeholders.append(f":s{i}")
        try:
            response = self.table.update_item(
                Key={self.KEY: job_id},
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=(
                    f"attribute_exists({self.KEY}) AND #state IN ({', '.join(placeholders)})"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _is_conditional_failure(exc):
                raise
            current = self.get(job_id)
            if current is None:
                raise WorkflowNotFoundError(f"workflow {job_id} not found") from exc
            raise StateConflictError(
                f"workflow {job_id} is {current.state.value}; cannot move to {target.value}"
            ) from exc
        return WorkflowRecord.from_dict(from_dynamo(response["Attributes"]))

    def list_by_state(self, state: WorkflowState | str) -> list[WorkflowRecord]:
        wanted = WorkflowState.parse(state)
        items = scan_all(self.table, FilterExpression=Attr("state").eq(wanted.value))
        return sorted(
            (WorkflowRecord.from_dict(item) for item in items), key=lambda r: r.created_at
        )

    def delete(self, job_id: str) -> None:
        self.table.delete_item(Key={self.KEY: job_id})
