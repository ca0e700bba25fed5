"""Strategy service (port 8003): list strategies, run backtests.

``POST /backtests`` runs a job on the close prices it is given (or on synthetic
candles) and returns the result. ``POST /jobs/{job_id}/run`` runs a job recorded in
the workflow-state table and records its outcome there: RUNNING, then COMPLETED with
the metrics, or FAILED with the reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from tradai_common.health import run_checks
from tradai_common.logs import get_logger
from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.settings import Settings
from tradai_common.state import StateConflictError, WorkflowStore
from tradai_data import Candle, SyntheticSource
from tradai_strategy import PriceBar, available_strategies, create_strategy, run_job
from tradai_strategy.base import Bar

logger = get_logger("tradai.strategy_service")
MAX_BARS = 20_000


class BacktestRequest(BaseModel):
    job: dict[str, Any]
    closes: list[Annotated[float, Field(gt=0)]] | None = Field(default=None, max_length=MAX_BARS)
    seed: int = 42
    fee_rate: float = Field(default=0.001, ge=0, lt=0.1)
    full: bool = False


def job_bars(job: BacktestJob, closes: list[float] | None, seed: int) -> list[Bar]:
    """The job's bars: given closes spaced by its timeframe, or synthetic candles."""
    start = int(job.start_at.timestamp())
    step = job.timeframe_seconds
    if closes is not None:
        return [PriceBar(timestamp=start + i * step, close=c) for i, c in enumerate(closes)]
    count = int((job.end_at.timestamp() - start) // step)
    if count > MAX_BARS:
        raise ValueError(f"job spans {count} bars; at most {MAX_BARS} are generated")
    candles: list[Candle] = SyntheticSource(seed=seed).fetch(
        job.symbol, job.timeframe, job.start_at, count
    )
    return list(candles)


def create_app(settings: Settings | None = None, store: WorkflowStore | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="TradAI strategy service", version="0.1.0")
    app.state.settings = settings
    app.state.store = store

    def get_store(request: Request) -> WorkflowStore:
        if request.app.state.store is None:
            request.app.state.store = WorkflowStore.from_settings(request.app.state.settings)
        current: WorkflowStore = request.app.state.store
        return current

    @app.get("/health")
    def health() -> dict[str, Any]:
        def strategies_loaded() -> tuple[bool, str]:
            names = sorted(available_strategies())
            return bool(names), ", ".join(names)

        return run_checks("strategy-service", {"strategies": strategies_loaded}).to_dict()

    @app.get("/strategies")
    def strategies() -> dict[str, Any]:
        return {"strategies": available_strategies()}

    @app.post("/strategies/{name}/validate")
    def validate(name: str, parameters: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        try:
            strategy = create_strategy(name, parameters)
        except ValueError as exc:
            return {"valid": False, "error": str(exc)}
        return {"valid": True, "parameters": strategy.parameters}

    @app.post("/backtests")
    def backtest(body: BacktestRequest) -> dict[str, Any]:
        try:
            job = BacktestJob.from_dict(body.job)
            result = run_job(job, job_bars(job, body.closes, body.seed), fee_rate=body.fee_rate)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"job_id": job.job_id, **(result.to_dict() if body.full else result.summary())}

    @app.post("/jobs/{job_id}/run")
    def run_recorded_job(request: Request, job_id: str, seed: int = 42) -> dict[str, Any]:
        store = get_store(request)
        record = store.get(job_id)
        if record is None:
            raise HTTPException(404, f"job {job_id} not found")
        try:
            store.update_status(job_id, WorkflowState.RUNNING)
        except StateConflictError as exc:
            raise HTTPException(409, str(exc)) from exc
        try:
            result = run_job(record.job, job_bars(record.job, None, seed))
        except ValueError as exc:
            logger.warning("backtest failed", extra={"job_id": job_id, "error": str(exc)})
            return store.update_status(job_id, WorkflowState.FAILED, error=str(exc)).to_dict()
        logger.info("backtest completed", extra={"job_id": job_id, "trades": result.num_trades})
        return store.update_status(
            job_id, WorkflowState.COMPLETED, result=result.summary()
        ).to_dict()

    return app


app = create_app()
