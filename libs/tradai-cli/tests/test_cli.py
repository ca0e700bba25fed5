import io
import json

import pytest
from moto import mock_aws

from tradai_cli.main import CliError, main, read_prices, synthetic_prices
from tradai_common.models import BacktestJob, WorkflowState
from tradai_common.state import WorkflowStore


def run(argv):
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


def test_validate_prints_normalised_job(job_file):
    code, out = run(["validate", str(job_file)])
    assert code == 0
    data = json.loads(out)
    assert data["symbol"] == "BTC/USDT"
    assert data["job_id"] == "job-123"


def test_validate_reports_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"strategy": "ma-crossover"}))
    assert run(["validate", str(bad)])[0] == 2
    assert "missing required field(s): end, start, symbol, timeframe" in capsys.readouterr().err
    bad.write_text("{not json")
    assert run(["validate", str(bad)])[0] == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert run(["validate", str(tmp_path / "absent.json")])[0] == 2


def test_backtest_with_csv_prices(tmp_path):
    prices = [100 - i for i in range(20)] + [80 + 2 * i for i in range(20)]
    csv_path = tmp_path / "prices.csv"
    csv_path.write_text(
        "timestamp,close\n" + "".join(f"{i * 60},{p}\n" for i, p in enumerate(prices))
    )
    code, out = run(
        ["backtest", "--param", "fast=3", "--param", "slow=8", "--prices", str(csv_path)]
    )
    assert code == 0
    result = json.loads(out)
    assert result["parameters"] == {"fast": 3, "slow": 8}
    assert result["bars"] == 40
    assert result["num_trades"] == 1
    assert result["total_return"] > 0


def test_backtest_job_on_synthetic_data_is_reproducible(job_file):
    first = run(["backtest", "--job", str(job_file), "--seed", "3", "--full"])
    second = run(["backtest", "--job", str(job_file), "--seed", "3", "--full"])
    assert first == second
    data = json.loads(first[1])
    assert data["bars"] == 14 * 24
    assert len(data["equity_curve"]) == 14 * 24


def test_backtest_bad_parameters_exit_2(capsys):
    assert run(["backtest", "--param", "fast=50", "--param", "slow=10"])[0] == 2
    assert "must be smaller" in capsys.readouterr().err


def test_read_prices_errors(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("timestamp,close\n1,abc\n")
    with pytest.raises(CliError, match=r"p\.csv:2: expected integer timestamp"):
        read_prices(str(path))


def test_synthetic_prices_deterministic():
    assert synthetic_prices(5, 1) == synthetic_prices(5, 1)
    assert [b.timestamp for b in synthetic_prices(3, 1, start=10, step=5)] == [10, 15, 20]


def test_strategies_lists_defaults():
    code, out = run(["strategies"])
    assert code == 0
    assert json.loads(out) == {"ma-crossover": {"fast": 10, "slow": 30}}


@mock_aws
def test_status_reads_dynamodb(job_file, capsys):
    store = WorkflowStore.from_settings()
    store.create_table()
    job = BacktestJob.from_dict(json.loads(job_file.read_text()))
    store.put(job)
    store.update_status(job.job_id, WorkflowState.RUNNING)
    code, out = run(["status", "job-123"])
    assert code == 0
    assert json.loads(out)["state"] == "RUNNING"
    assert run(["status", "nope"])[0] == 1
    assert "no workflow nope in tradai-workflow-state-dev" in capsys.readouterr().err


def test_subcommand_required():
    with pytest.raises(SystemExit):
        main([])
