import io
import json
import logging

from tradai_common.logs import JsonFormatter, get_logger


def test_one_json_object_per_line_with_extras():
    stream = io.StringIO()
    logger = get_logger("tradai.test.extras", stream=stream, static_fields={"service": "svc"})
    logger.info("job %s queued", "abc", extra={"job_id": "abc", "attempt": 2})
    logger.warning("second line")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["message"] == "job abc queued"
    assert first["level"] == "INFO"
    assert first["logger"] == "tradai.test.extras"
    assert first["job_id"] == "abc"
    assert first["attempt"] == 2
    assert first["service"] == "svc"
    assert first["timestamp"].endswith("+00:00")
    assert json.loads(lines[1])["level"] == "WARNING"


def test_repeated_calls_do_not_duplicate_handlers():
    stream = io.StringIO()
    get_logger("tradai.test.dupes", stream=stream)
    logger = get_logger("tradai.test.dupes")
    logger.info("once")
    assert len(stream.getvalue().splitlines()) == 1
    assert len(logger.handlers) == 1
    assert logger.propagate is False


def test_level_filters_and_exceptions_are_serialised():
    stream = io.StringIO()
    logger = get_logger("tradai.test.level", level="warning", stream=stream)
    logger.info("hidden")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    payload = json.loads(lines[0])
    assert payload["level"] == "ERROR"
    assert "RuntimeError: boom" in payload["exception"]


def test_formatter_handles_non_json_values():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    record.obj = object()
    payload = json.loads(JsonFormatter().format(record))
    assert payload["obj"].startswith("<object object")
