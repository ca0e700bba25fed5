"""Data-collection service (port 8002): collect candles into a store, serve them
resampled.

Candles go to S3 (``s3://$DATA_BUCKET/candles/...``) when ``DATA_BUCKET`` is set and
to memory otherwise. The source is the deterministic synthetic random walk of
``tradai_data`` (no exchange is reachable from here).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, Field

import tradai_common.aws as aws
from tradai_common.logs import get_logger
from tradai_common.settings import Settings
from tradai_data import (
    CandleStore,
    InMemoryCandleStore,
    S3CandleStore,
    SyntheticSource,
    resample,
)

logger = get_logger("tradai.data_collection")
MAX_CANDLES = 5000


class CollectRequest(BaseModel):
    symbol: str = Field(examples=["BTC-USDT"])
    timeframe: str = Field(default="1h", examples=["1h"])
    start: datetime
    count: int = Field(default=100, gt=0, le=MAX_CANDLES)


def make_store(settings: Settings) -> CandleStore:
    if settings.data_bucket:
        return S3CandleStore(settings.data_bucket, aws.client("s3", settings))
    return InMemoryCandleStore()


def create_app(
    settings: Settings | None = None,
    store: CandleStore | None = None,
    source: SyntheticSource | None = None,
) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="TradAI data collection", version="0.1.0")
    app.state.settings = settings
    app.state.store = store
    app.state.source = source or SyntheticSource()

    def get_store(request: Request) -> CandleStore:
        if request.app.state.store is None:
            request.app.state.store = make_store(request.app.state.settings)
        current: CandleStore = request.app.state.store
        return current

    @app.get("/health")
    def health(request: Request) -> dict[str, Any]:
        store = get_store(request)
        return {
            "service": "data-collection",
            "status": "healthy",
            "store": type(store).__name__,
            "environment": settings.environment,
        }

    @app.post("/collect")
    def collect(request: Request, body: CollectRequest) -> dict[str, Any]:
        try:
            candles = request.app.state.source.fetch(
                body.symbol, body.timeframe, body.start, body.count
            )
            total = get_store(request).write(body.symbol, body.timeframe, candles)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        logger.info(
            "candles collected",
            extra={"symbol": body.symbol, "timeframe": body.timeframe, "count": len(candles)},
        )
        return {
            "symbol": body.symbol,
            "timeframe": body.timeframe,
            "collected": len(candles),
            "stored": total,
            "first": candles[0].timestamp,
            "last": candles[-1].timestamp,
        }

    @app.get("/candles")
    def candles(
        request: Request,
        symbol: str,
        timeframe: str = "1h",
        resample_to: Annotated[str | None, Query(alias="resample")] = None,
        start: int | None = None,
        end: int | None = None,
    ) -> dict[str, Any]:
        try:
            found = get_store(request).read(symbol, timeframe, start, end)
            if resample_to:
                found = resample(found, resample_to)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        if not found:
            raise HTTPException(404, f"no {timeframe} candles for {symbol}")
        return {
            "symbol": symbol,
            "timeframe": resample_to or timeframe,
            "candles": [c.to_dict() for c in found],
        }

    return app


app = create_app()
