"""JSON log lines keep their tracebacks, for our lines and Celery's alike."""
import io
import logging

import orjson

from worker.logs import configure, get_logger
from worker.settings import Settings, get_settings


def test_json_lines_carry_the_traceback_as_text():
    stream = io.StringIO()
    configure(Settings(log_format="json"), stream=stream)
    try:
        raise ValueError("file descriptor is None")
    except ValueError:
        logging.getLogger("celery.worker").critical("Unrecoverable error", exc_info=True)
        get_logger("backfill.worker").exception("chunk failed")
    finally:
        configure(get_settings())
    foreign, ours = (orjson.loads(line) for line in stream.getvalue().splitlines())
    for line in (foreign, ours):
        assert "Traceback (most recent call last)" in line["exception"]
        assert "ValueError: file descriptor is None" in line["exception"] and "exc_info" not in line
    assert foreign["logger"] == "celery.worker" and ours["event"] == "chunk failed"


def test_no_color_turns_the_console_colours_off():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    import os

    for no_color, coloured in (("", True), ("1", False)):
        stream = Terminal()
        os.environ["NO_COLOR"] = no_color
        try:
            configure(Settings(log_format="console"), stream=stream)
            get_logger("backfill.test").warning("hello", n=1)
        finally:
            del os.environ["NO_COLOR"]
            configure(get_settings())
        assert ("\x1b[" in stream.getvalue()) is coloured, stream.getvalue()
