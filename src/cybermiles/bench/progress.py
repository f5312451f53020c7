"""Optional transient progress bars on stderr for the benchmarks (rich), or nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Advance = Callable[[int], None]


class ProgressBars:
    """``with ProgressBars(enabled) as bars: advance = bars.task("signing", n)``; ``task``
    returns None when disabled, so callers pass it on as an optional callback."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description:<24}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> ProgressBars:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: int) -> Advance | None:
        if self._progress is None:
            return None
        progress, task_id = self._progress, self._progress.add_task(description, total=total)
        return lambda n: progress.advance(task_id, n)
