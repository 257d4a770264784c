import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from postroom.core.logging import JsonFormatter


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "postroom.test", "msg": "hello %s", "args": ("you",)})
    record.levelname, record.levelno = "WARNING", logging.WARNING
    record.created, record.msecs = created, (created - int(created)) * 1000
    vars(record).update(extra)
    return record


def test_a_line_is_one_json_object_with_the_time_to_the_millisecond() -> None:
    created = datetime(2026, 12, 5, 21, 38, 32, 32_900, tzinfo=UTC).timestamp()
    line = JsonFormatter().format(_record(created, route="/x", status=201, path=Path("/srv/mail")))
    assert json.loads(line) == {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": "warning",
        "logger": "postroom.test",
        "message": "hello you",
        "route": "/x",
        "status": 201,
        "path": "/srv/mail",  # what JSON cannot hold, as text
    }


def test_lines_within_one_second_and_across_seconds_keep_their_own_times() -> None:
    formatter = JsonFormatter()
    start = datetime(2026, 12, 5, 23, 59, 59, tzinfo=UTC).timestamp()
    times = [
        json.loads(formatter.format(_record(start + offset)))["time"]
        for offset in (0.0, 0.5, 0.999, 1.0, 1.25)
    ]
    assert times == [
        "2026-12-05T23:59:59.000+00:00",
        "2026-12-05T23:59:59.500+00:00",
        "2026-12-05T23:59:59.999+00:00",
        "2026-12-06T00:00:00.000+00:00",
        "2026-12-06T00:00:00.250+00:00",
    ]


def test_an_exception_is_formatted_into_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError as error:
        record = _record(0.0)
        record.exc_info = (type(error), error, error.__traceback__)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: boom" in entry["exception"]
