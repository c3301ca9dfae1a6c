"""Tools that process many files go on past a bad one and fail at the end with a count.

A corrupt PNG among 20,000 must not throw away the other 19,999 results: each failure is
logged with the file's name when it happens, the work goes on, and at the end
:meth:`FileFailures.raise_if_any` raises a :class:`FilesFailedError` with the count (and the
results computed without the bad files, for callers that want them).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

# What reading a damaged or missing file raises: OSError (missing, unreadable, PIL's
# "cannot identify image file", truncated data), ValueError (content of the wrong kind), and
# SyntaxError, which PIL raises for some broken PNG chunks.
FILE_ERRORS = (OSError, ValueError, SyntaxError)

_EXAMPLES = 5


class FilesFailedError(ValueError):
    """Some files of a batch could not be processed; the others were.

    Attributes:
        failures: ``(file name, error text)`` of every failed file.
        total: how many files the batch had.
        results: what was computed without the failed files (None if nothing).
    """

    def __init__(self, what: str, failures: list[tuple[str, str]], total: int, results: Any = None):
        self.failures = failures
        self.total = total
        self.results = results
        examples = "; ".join(f"{name}: {error}" for name, error in failures[:_EXAMPLES])
        more = f"; and {len(failures) - _EXAMPLES} more" if len(failures) > _EXAMPLES else ""
        super().__init__(
            f"{len(failures)} of {total} {what} failed and were skipped ({examples}{more})"
        )


class FileFailures:
    """Collects the files that failed during a batch job.

    Args:
        what: the kind of file, plural, for messages, e.g. "ground-truth files".
    """

    def __init__(self, what: str):
        self.what = what
        self.failures: list[tuple[str, str]] = []

    def record(self, name: str, error: BaseException) -> None:
        """Log that ``name`` failed with ``error`` and remember it."""
        text = f"{type(error).__name__}: {error}"
        logger.error("Skipping %s: %s", name, text)
        self.failures.append((name, text))

    def extend(self, failures: list[tuple[str, str]]) -> None:
        """Add failures recorded elsewhere (another process or rank)."""
        self.failures.extend(failures)

    def raise_if_any(self, total: int, results: Any = None) -> None:
        """Raise :class:`FilesFailedError` if any file failed.

        Args:
            total: how many files the batch had.
            results: what was computed without the failed files.
        """
        if self.failures:
            raise FilesFailedError(self.what, self.failures, total, results)
