"""Structured logging: JSON lines in production, readable key=value on a terminal."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

import structlog

from xds_server.redaction import redact


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        # A token pasted where a name or value belongs, a password in a database
        # message: neither reaches the log.
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def redact_tokens(
    _logger: Any, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A structlog processor: no API token is ever written to the log, whatever field
    carries it (the server never logs one on purpose; this covers operator mistakes)."""
    return {key: _redacted(value) for key, value in event.items()}


class LogWriter:
    """Writes rendered lines to a stream; a line the stream refuses (a full disk under
    the log file, a closed pipe) is counted and dropped, never raised: the request that
    logged it must not fail because its log line could not be kept."""

    dropped = 0  # lines lost since start, process-wide (one stderr): xds_log_lines_dropped

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            try:
                print(message, file=self._file, flush=True)
            except (OSError, ValueError):
                # The text stays in the stream's buffer and goes out with the next
                # flush that succeeds, unless the buffer is full; either way count it.
                LogWriter.dropped += 1

    log = debug = info = warning = warn = error = critical = exception = fatal = failure = msg


class _LibraryLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The standard library's handler, counting a line it could not write as
    :class:`LogWriter` does instead of printing a traceback to the same full stream."""

    def handleError(self, record: logging.LogRecord) -> None:
        LogWriter.dropped += 1


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Send structlog events to stderr; ``json=None`` picks JSON unless stderr is a TTY."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    # What every line gets, ours and the libraries' alike.
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_tokens,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_args: LogWriter(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library (psycopg's pool when the database
    # is away): the same lines, redacted, instead of raw multi-line stderr.
    handler = _LibraryLogHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
