"""Fixtures every test gets."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_loggers():
    """In-process CLI runs (``cli.setup``/``cli.main``) attach console and log.txt handlers to
    these loggers and stop propagation; undo that so later tests still capture their records."""
    loggers = [logging.getLogger(name) for name in ("mask2former", "fvcore")]
    saved = [(log, list(log.handlers), log.propagate, log.level) for log in loggers]
    yield
    for log, handlers, propagate, level in saved:
        for handler in set(log.handlers) - set(handlers):
            handler.close()
        log.handlers[:], log.propagate, log.level = handlers, propagate, level
