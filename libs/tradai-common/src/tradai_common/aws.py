"""AWS client factory.

All AWS access in TradAI goes through :func:`client` / :func:`resource` so that one
variable, ``AWS_ENDPOINT_URL``, points every call at a local endpoint (moto server,
LocalStack) and the region always comes from :class:`~tradai_common.settings.Settings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

from tradai_common.settings import Settings

_RETRIES = {"max_attempts": 5, "mode": "standard"}


def client_kwargs(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments shared by every client and resource we create."""
    settings = settings or Settings.from_env()
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": Config(retries=_RETRIES, user_agent_extra=f"tradai/{settings.service_name}"),
    }
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    return kwargs


def client(service: str, settings: Settings | None = None, **overrides: Any) -> Any:
    """Create a boto3 client for ``service`` (``"dynamodb"``, ``"sqs"``, ...)."""
    kwargs = client_kwargs(settings)
    kwargs.update(overrides)
    return boto3.client(service, **kwargs)


def resource(service: str, settings: Settings | None = None, **overrides: Any) -> Any:
    """Create a boto3 resource for ``service`` (``"dynamodb"``, ``"s3"``)."""
    kwargs = client_kwargs(settings)
    kwargs.update(overrides)
    return boto3.resource(service, **kwargs)


SNS_SUBJECT_LIMIT = 100


def publish_alert(
    subject: str, details: Mapping[str, Any], settings: Settings | None = None
) -> str | None:
    """Publish ``details`` as JSON on the alerts topic, subject ``[tradai <env>] ...``.

    Returns the SNS message id, or ``None`` when ``ALERTS_TOPIC_ARN`` is not set.
    """
    settings = settings or Settings.from_env()
    if not settings.alerts_topic_arn:
        return None
    full_subject = f"[tradai {settings.environment}] {subject}"[:SNS_SUBJECT_LIMIT]
    response = client("sns", settings).publish(
        TopicArn=settings.alerts_topic_arn,
        Subject=full_subject,
        Message=json.dumps(dict(details), indent=2, default=str),
    )
    return str(response["MessageId"])
