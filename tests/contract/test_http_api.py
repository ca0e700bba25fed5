"""The HTTP routes the ALB, the API gateway and the health checks call exist, and every
service's /health answers as the load balancer and the dashboards read it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tradai_backend.app import create_app as create_backend
from tradai_common.models import HealthStatus
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore
from tradai_data_collection.app import create_app as create_data_collection
from tradai_strategy_service.app import create_app as create_strategy_service

# (method, path) pairs that callers outside each service rely on.
ROUTES: dict[str, set[tuple[str, str]]] = {
    "backend": {
        ("get", "/health"),
        ("post", "/backtests"),
        ("get", "/backtests/{job_id}"),
        ("post", "/backtests/{job_id}/cancel"),
    },
    "data-collection": {("get", "/health"), ("post", "/collect"), ("get", "/candles")},
    "strategy-service": {
        ("get", "/health"),
        ("get", "/strategies"),
        ("post", "/strategies/{name}/validate"),
        ("post", "/backtests"),
        ("post", "/jobs/{job_id}/run"),
    },
}


def _apps(store: WorkflowStore) -> dict[str, FastAPI]:
    settings = Settings.from_env()
    return {
        "backend": create_backend(settings, store=store),
        "data-collection": create_data_collection(settings),
        "strategy-service": create_strategy_service(settings, store=store),
    }


@pytest.mark.parametrize("service", sorted(ROUTES))
def test_routes_callers_rely_on_exist(store: WorkflowStore, service: str) -> None:
    schema: dict[str, Any] = _apps(store)[service].openapi()
    offered = {(method, path) for path, ops in schema["paths"].items() for method in ops}
    missing = ROUTES[service] - offered
    assert not missing, f"{service} no longer offers {sorted(missing)}"


@pytest.mark.parametrize("service", sorted(ROUTES))
def test_health_status_code_and_body_agree(
    store: WorkflowStore, service: str, monkeypatch: pytest.MonkeyPatch, region: str
) -> None:
    bucket = "tradai-data-dev"
    boto3.client("s3", region_name=region).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
    )
    monkeypatch.setenv("DATA_BUCKET", bucket)
    response = TestClient(_apps(store)[service]).get("/health")
    # The ALB target groups look at the status code; people and dashboards at the body.
    assert response.status_code in (200, 503), response.text
    body = response.json()
    assert isinstance(body.get("service"), str), body
    assert body["service"], body
    assert body.get("status") == ("healthy" if response.status_code == 200 else "unhealthy"), body
    if "healthy" in body:
        # A full health report must be a HealthStatus, as the health table stores them.
        assert HealthStatus.from_dict(body).healthy == (response.status_code == 200)
