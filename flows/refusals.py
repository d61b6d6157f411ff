"""A refusal is an answer, not a crash: a ``VmwaveError`` ends a run Failed with its message and no traceback.

vmwave raises ``VmwaveError`` for what it expected and can explain (a wave
that cannot start, a file with a bad field, vCenter refusing the login); its
message says what is wrong and the fix. Prefect logs every failure with its
traceback, which for those buries the one line that matters under sixty that
do not, in the terminal, the worker's log and the UI. ``quiet_refusals``
drops the traceback from Prefect's run logs for these errors only: an
unexpected exception keeps its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.states import Failed, State

from vmwave.errors import VmwaveError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class _NoTracebackForRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], VmwaveError):
            record.exc_info, record.exc_text = None, None
        return True


_FILTER = _NoTracebackForRefusals()


def quiet_refusals() -> None:
    """Install the filter on Prefect's run loggers (once; their handlers send to the terminal and the UI)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def refused(exc: VmwaveError, logger: logging.Logger | logging.LoggerAdapter) -> State:
    """The run's end when ``exc`` refused it: one error line, and a Failed state holding the error for the caller."""
    logger.error("%s", exc)
    return Failed(message=str(exc), data=exc)


class Incomplete(VmwaveError):
    """A run that went through but did not reach its end for every VM; ``result`` is what it did (its report)."""

    def __init__(self, what: str, fix: str, result: Any):
        super().__init__(what, fix)
        self.result = result


def incomplete(what: str, fix: str, result: Any) -> State:
    """The run's end when some VM did not make it: Failed with ``what``, its report kept on the error (a Failed
    state's data must be an exception for Prefect's engine to read it back)."""
    return Failed(message=what, data=Incomplete(what, fix, result))
