"""Event and record models shared by services, libraries and Lambda functions.

Plain dataclasses (no pydantic: this module ships in every Lambda image, which
installs nothing but this wheel). Every ``from_dict`` validates its input and raises
``ValueError`` with a message that names the offending field.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

TIMEFRAMES: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}
_STRATEGY_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_SYMBOL_RE = re.compile(r"^([A-Z0-9]{2,10})[/-]([A-Z0-9]{2,10})$")
ParamValue = int | float | str | bool


def utc_now() -> str:
    """Current UTC time as an ISO-8601 string (seconds precision)."""
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


def parse_timestamp(value: str, field_name: str) -> datetime:
    """Parse an ISO date or datetime; naive values are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{field_name} must be an ISO-8601 date or datetime, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _require_keys(kind: str, data: Mapping[str, Any], required: set[str], known: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{kind}: expected an object, got {type(data).__name__}")
    missing = sorted(required - data.keys())
    if missing:
        raise ValueError(f"{kind}: missing required field(s): {', '.join(missing)}")
    unknown = sorted(set(data.keys()) - known)
    if unknown:
        raise ValueError(f"{kind}: unknown field(s): {', '.join(unknown)}")


class WorkflowState(StrEnum):
    """Life cycle of a backtest workflow record."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def can_transition_to(self, target: WorkflowState) -> bool:
        return target in _TRANSITIONS[self]

    def allowed_sources(self) -> tuple[WorkflowState, ...]:
        """States from which a record may move to this one."""
        return tuple(s for s in WorkflowState if self in _TRANSITIONS[s])

    @classmethod
    def parse(cls, value: str | WorkflowState) -> WorkflowState:
        if isinstance(value, WorkflowState):
            return value
        try:
            return cls(str(value).upper())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown workflow state {value!r}; expected one of {names}") from None


_TERMINAL = frozenset({WorkflowState.COMPLETED, WorkflowState.FAILED, WorkflowState.CANCELLED})
_TRANSITIONS: dict[WorkflowState, frozenset[WorkflowState]] = {
    WorkflowState.PENDING: frozenset(
        {
            WorkflowState.QUEUED,
            WorkflowState.RUNNING,
            WorkflowState.FAILED,
            WorkflowState.CANCELLED,
        }
    ),
    WorkflowState.QUEUED: frozenset(
        {WorkflowState.RUNNING, WorkflowState.FAILED, WorkflowState.CANCELLED}
    ),
    WorkflowState.RUNNING: frozenset(
        {WorkflowState.COMPLETED, WorkflowState.FAILED, WorkflowState.CANCELLED}
    ),
    WorkflowState.COMPLETED: frozenset(),
    WorkflowState.FAILED: frozenset(),
    WorkflowState.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class BacktestJob:
    """A request to backtest one strategy on one symbol over a date range."""

    strategy: str
    symbol: str
    timeframe: str
    start: str
    end: str
    parameters: dict[str, ParamValue] = field(default_factory=dict)
    initial_capital: float = 10_000.0
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    submitted_at: str = field(default_factory=utc_now)

    _REQUIRED = frozenset({"strategy", "symbol", "timeframe", "start", "end"})
    _KNOWN = _REQUIRED | {"parameters", "initial_capital", "job_id", "submitted_at"}

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, str) or not _STRATEGY_RE.match(self.strategy):
            raise ValueError(
                f"strategy must be a lowercase slug like 'ma-crossover', got {self.strategy!r}"
            )
        match = _SYMBOL_RE.match(self.symbol) if isinstance(self.symbol, str) else None
        if match is None:
            raise ValueError(f"symbol must look like 'BTC/USDT', got {self.symbol!r}")
        # Normalise "BTC-USDT" (URL friendly) to "BTC/USDT".
        object.__setattr__(self, "symbol", f"{match.group(1)}/{match.group(2)}")
        if self.timeframe not in TIMEFRAMES:
            raise ValueError(
                f"timeframe must be one of {', '.join(TIMEFRAMES)}, got {self.timeframe!r}"
            )
        start = parse_timestamp(self.start, "start")
        end = parse_timestamp(self.end, "end")
        if start >= end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        if not isinstance(self.parameters, dict):
            raise ValueError("parameters must be an object")
        for key, value in self.parameters.items():
            if not isinstance(key, str) or not isinstance(value, int | float | str | bool):
                raise ValueError(f"parameter {key!r} must be a number, string or bool")
        if isinstance(self.initial_capital, bool) or not isinstance(
            self.initial_capital, int | float
        ):
            raise ValueError(
                f"initial_capital must be a number, got {type(self.initial_capital).__name__}"
            )
        if self.initial_capital <= 0:
            raise ValueError(f"initial_capital must be positive, got {self.initial_capital}")
        object.__setattr__(self, "initial_capital", float(self.initial_capital))
        if not isinstance(self.job_id, str) or not self.job_id:
            raise ValueError("job_id must be a non-empty string")

    @property
    def start_at(self) -> datetime:
        return parse_timestamp(self.start, "start")

    @property
    def end_at(self) -> datetime:
        return parse_timestamp(self.end, "end")

    @property
    def timeframe_seconds(self) -> int:
        return TIMEFRAMES[self.timeframe]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "strategy": self.strategy,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "start": self.start,
            "end": self.end,
            "parameters": dict(self.parameters),
            "initial_capital": self.initial_capital,
            "submitted_at": self.submitted_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BacktestJob:
        _require_keys("BacktestJob", data, set(cls._REQUIRED), set(cls._KNOWN))
        kwargs = {k: data[k] for k in cls._KNOWN if k in data}
        if isinstance(kwargs.get("start"), date):
            kwargs["start"] = kwargs["start"].isoformat()
        if isinstance(kwargs.get("end"), date):
            kwargs["end"] = kwargs["end"].isoformat()
        if "initial_capital" in kwargs and isinstance(kwargs["initial_capital"], str):
            try:
                kwargs["initial_capital"] = float(kwargs["initial_capital"])
            except ValueError:
                raise ValueError(
                    f"initial_capital must be a number, got {kwargs['initial_capital']!r}"
                ) from None
        return cls(**kwargs)


@dataclass(frozen=True)
class WorkflowRecord:
    """What the workflow-state table holds for one job."""

    job: BacktestJob
    state: WorkflowState = WorkflowState.PENDING
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "job_id": self.job.job_id,
            "state": self.state.value,
            "job": self.job.to_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.result is not None:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowRecord:
        known = {"job_id", "state", "job", "created_at", "updated_at", "result", "error"}
        _require_keys("WorkflowRecord", data, {"job", "state"}, known)
        job = BacktestJob.from_dict(data["job"])
        if "job_id" in data and data["job_id"] != job.job_id:
            raise ValueError(
                f"WorkflowRecord: job_id {data['job_id']!r} does not match job {job.job_id!r}"
            )
        result = data.get("result")
        if result is not None and not isinstance(result, Mapping):
            raise ValueError("WorkflowRecord: result must be an object")
        return cls(
            job=job,
            state=WorkflowState.parse(data["state"]),
            created_at=str(data.get("created_at") or utc_now()),
            updated_at=str(data.get("updated_at") or utc_now()),
            result=dict(result) if result is not None else None,
            error=None if data.get("error") is None else str(data["error"]),
        )


@dataclass(frozen=True)
class HealthStatus:
    """Outcome of a health check of one service or function."""

    service: str
    healthy: bool
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    checked_at: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or not self.service:
            raise ValueError("HealthStatus: service must be a non-empty string")
        if not isinstance(self.healthy, bool):
            raise ValueError("HealthStatus: healthy must be a bool")
        for name, ok in self.checks.items():
            if not isinstance(ok, bool):
                raise ValueError(f"HealthStatus: check {name!r} must be a bool")
        parse_timestamp(self.checked_at, "checked_at")

    @property
    def status(self) -> str:
        return "healthy" if self.healthy else "unhealthy"

    @property
    def failed_checks(self) -> list[str]:
        return sorted(name for name, ok in self.checks.items() if not ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": self.status,
            "healthy": self.healthy,
            "checks": dict(self.checks),
            "details": dict(self.details),
            "checked_at": self.checked_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthStatus:
        known = {"service", "status", "healthy", "checks", "details", "checked_at"}
        _require_keys("HealthStatus", data, {"service", "healthy"}, known)
        checks = data.get("checks") or {}
        details = data.get("details") or {}
        if not isinstance(checks, Mapping) or not isinstance(details, Mapping):
            raise ValueError("HealthStatus: checks and details must be objects")
        return cls(
            service=data["service"],
            healthy=data["healthy"],
            checks=dict(checks),
            details={str(k): str(v) for k, v in details.items()},
            checked_at=str(data.get("checked_at") or utc_now()),
        )
