"""``tradai``: validate backtest jobs, run backtests locally, read workflow state.

tradai validate job.json
tradai backtest --strategy ma-crossover --param fast=5 --param slow=20 --prices closes.csv
tradai backtest --job job.json --synthetic 500 --seed 7
tradai status 0123abcd...
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path
from typing import Any, TextIO

from tradai_common.logs import get_logger
from tradai_common.models import BacktestJob
from tradai_common.settings import Settings
from tradai_common.state import WorkflowStore
from tradai_strategy import PriceBar, available_strategies, backtest, create_strategy, run_job

EXIT_OK, EXIT_NOT_FOUND, EXIT_INVALID = 0, 1, 2
logger = get_logger("tradai.cli", stream=sys.stderr)


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.code = code


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _load_job(path: str) -> BacktestJob:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    try:
        return BacktestJob.from_dict(data)
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from exc


def _parse_param(text: str) -> tuple[str, int | float | str]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for convert in (int, float):
        try:
            return key, convert(raw)
        except ValueError:
            continue
    return key, raw


def read_prices(path: str) -> list[PriceBar]:
    """CSV with a header containing ``timestamp`` (epoch seconds) and ``close``."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    bars = []
    for line, row in enumerate(rows, start=2):
        try:
            bars.append(PriceBar(timestamp=int(row["timestamp"]), close=float(row["close"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError(f"{path}:{line}: expected integer timestamp and numeric close") from exc
    if not bars:
        raise CliError(f"{path} holds no prices")
    return bars


def synthetic_prices(count: int, seed: int, start: int = 0, step: int = 3600) -> list[PriceBar]:
    # Reproducible demo data, not cryptography.
    rng = random.Random(seed)  # noqa: S311  # nosec B311
    price, bars = 100.0, []
    for i in range(count):
        price *= 1 + rng.gauss(0.0005, 0.01)
        bars.append(PriceBar(timestamp=start + i * step, close=round(price, 6)))
    return bars


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    job = _load_job(args.job)
    _print_json(job.to_dict(), out)
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace, out: TextIO) -> int:
    job = _load_job(args.job) if args.job else None
    if args.prices:
        bars = read_prices(args.prices)
    else:
        start = int(job.start_at.timestamp()) if job else 0
        step = job.timeframe_seconds if job else 3600
        bars = synthetic_prices(args.synthetic, args.seed, start, step)
    try:
        if job is not None:
            result = run_job(job, bars, fee_rate=args.fee)
        else:
            strategy = create_strategy(args.strategy, dict(args.param))
            result = backtest(strategy, bars, initial_capital=args.capital, fee_rate=args.fee)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    logger.info("backtest finished", extra={"strategy": result.strategy, "bars": result.bars})
    _print_json(result.to_dict() if args.full else result.summary(), out)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    settings = Settings.from_env()
    record = WorkflowStore.from_settings(settings).get(args.job_id)
    if record is None:
        raise CliError(
            f"no workflow {args.job_id} in {settings.workflow_table}", code=EXIT_NOT_FOUND
        )
    _print_json(record.to_dict(), out)
    return EXIT_OK


def cmd_strategies(args: argparse.Namespace, out: TextIO) -> int:
    _print_json(available_strategies(), out)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradai", description="TradAI command line")
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="validate a backtest job JSON file")
    validate.add_argument("job", help="path to a BacktestJob JSON file")
    validate.set_defaults(func=cmd_validate)

    bt = sub.add_parser("backtest", help="run a backtest locally")
    what = bt.add_mutually_exclusive_group()
    what.add_argument("--job", help="BacktestJob JSON file (strategy, window, capital)")
    what.add_argument("--strategy", default="ma-crossover", help="strategy name")
    bt.add_argument("--param", action="append", type=_parse_param, default=[], metavar="K=V")
    data = bt.add_mutually_exclusive_group()
    data.add_argument("--prices", help="CSV with timestamp,close columns")
    data.add_argument("--synthetic", type=int, default=500, metavar="N", help="random-walk bars")
    bt.add_argument("--seed", type=int, default=42)
    bt.add_argument("--capital", type=float, default=10_000.0)
    bt.add_argument("--fee", type=float, default=0.001)
    bt.add_argument("--full", action="store_true", help="include trades and equity curve")
    bt.set_defaults(func=cmd_backtest)

    status = sub.add_parser("status", help="show a workflow record from DynamoDB")
    status.add_argument("job_id")
    status.set_defaults(func=cmd_status)

    strategies = sub.add_parser("strategies", help="list strategies and default parameters")
    strategies.set_defaults(func=cmd_strategies)
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args, out or sys.stdout)
    except CliError as exc:
        sys.stderr.write(f"tradai: error: {exc}\n")
        return exc.code
    return code
