"""Backend API (port 8000): submit backtest jobs, follow and cancel them.

A submitted job is validated as a :class:`BacktestJob`, recorded PENDING in the
workflow-state table and, when ``BACKTEST_QUEUE_URL`` is set, sent to the backtest
queue and moved to QUEUED (the backtest-consumer Lambda picks it up from there).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request, Response, status

import tradai_common.aws as aws
from tradai_common.health import dynamodb_table_check, run_checks
from tradai_common.logs import get_logger
from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.settings import Settings
from tradai_common.state import StateConflictError, WorkflowNotFoundError, WorkflowStore

logger = get_logger("tradai.backend")


class Backend:
    """Per-app dependencies, created on first use (not at import time)."""

    def __init__(
        self, settings: Settings, store: WorkflowStore | None = None, sqs: Any | None = None
    ) -> None:
        self.settings = settings
        self._store = store
        self._sqs = sqs

    @property
    def store(self) -> WorkflowStore:
        if self._store is None:
            self._store = WorkflowStore.from_settings(self.settings)
        return self._store

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = aws.client("sqs", self.settings)
        return self._sqs


def get_backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(get_backend)]


def create_app(
    settings: Settings | None = None,
    store: WorkflowStore | None = None,
    sqs: Any | None = None,
) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="TradAI backend", version="0.1.0")
    app.state.backend = Backend(settings, store, sqs)

    @app.get("/health")
    def health(backend: BackendDep, response: Response) -> dict[str, Any]:
        client = backend.store.table.meta.client
        result = run_checks(
            "backend",
            {"workflow_table": dynamodb_table_check(backend.store.table_name, client)},
        )
        if not result.healthy:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return result.to_dict()

    @app.post("/backtests", status_code=status.HTTP_202_ACCEPTED)
    def submit_backtest(
        backend: BackendDep, payload: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        try:
            job = BacktestJob.from_dict(payload)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        try:
            record = backend.store.put(job)
        except StateConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        queue_url = backend.settings.backtest_queue_url
        if queue_url:
            backend.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(job.to_dict()))
            record = backend.store.update_status(
                job.job_id, WorkflowState.QUEUED, expected=WorkflowState.PENDING
            )
        logger.info(
            "backtest submitted",
            extra={"job_id": job.job_id, "strategy": job.strategy, "state": record.state.value},
        )
        return record.to_dict()

    @app.get("/backtests/{job_id}")
    def get_backtest(backend: BackendDep, job_id: str) -> dict[str, Any]:
        record = backend.store.get(job_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"backtest {job_id} not found")
        return record.to_dict()

    @app.post("/backtests/{job_id}/cancel")
    def cancel_backtest(backend: BackendDep, job_id: str) -> dict[str, Any]:
        try:
            record = backend.store.update_status(job_id, WorkflowState.CANCELLED)
        except WorkflowNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except StateConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return record.to_dict()

    return app


app = create_app()
