"""``FreshnessTrigger``: waits in the triggerer until data is fresh, for the deferrable sensor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlobs.core.freshness import CHECK
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.specs.freshness import FreshnessSpec


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def evaluate_freshness(
    spec: FreshnessSpec, *, as_of: datetime | None, window: tuple[datetime | None, datetime | None]
) -> CheckResult:
    """One pass of ``spec`` for a wait (the sensor's poke, the trigger's loop): bad input is an
    ``error`` result, an unavailable database retries (see
    :func:`~airflow_mlobs.operators.base.guarded`). Without a fixed ``as_of`` (a run without an
    interval) the data is judged as of this pass, so data that lands while waiting counts."""
    from airflow_mlobs.operators.base import guarded

    moment = as_of or datetime.now(UTC)
    start, end = window
    return guarded(
        CHECK,
        spec.dataset_name(),
        window,
        lambda: spec.evaluate(as_of=moment, window_start=start, window_end=end),
    )


class FreshnessTrigger(BaseTrigger):
    """Re-evaluate a :class:`~airflow_mlobs.specs.freshness.FreshnessSpec` every
    ``poke_interval`` seconds until it passes (or warns), errors, or ``deadline`` passes.
    ``as_of`` is the moment judged at; None judges as of each evaluation's own time.

    The event carries the last result (``{"result": <CheckResult dict>, "timed_out": bool}``). Each
    evaluation runs the same gather-and-judge code as the operator, in a worker thread so the
    triggerer's event loop is never blocked by a database query.
    """

    def __init__(
        self,
        *,
        spec: dict[str, Any],
        as_of: str | None,
        poke_interval: float,
        deadline: str | None = None,
        window_start: str | None = None,
        window_end: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.spec = spec
        self.as_of = as_of
        self.poke_interval = poke_interval
        self.deadline = deadline
        self.window_start = window_start
        self.window_end = window_end

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs; everything is plain JSON."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "spec": self.spec,
                "as_of": self.as_of,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "window_start": self.window_start,
                "window_end": self.window_end,
            },
        )

    def evaluate(self) -> CheckResult:
        """One gather-and-judge pass (synchronous; run in a thread by :meth:`run`)."""
        return evaluate_freshness(
            FreshnessSpec(**self.spec),
            as_of=_parse(self.as_of),
            window=(_parse(self.window_start), _parse(self.window_end)),
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until fresh, error, or the deadline; then yield one event."""
        deadline = _parse(self.deadline)
        while True:
            result = await asyncio.to_thread(self.evaluate)
            if result.status in (Status.PASS, Status.WARN, Status.ERROR):
                yield TriggerEvent({"result": result.to_dict(), "timed_out": False})  # type: ignore[no-untyped-call]
                return
            now = datetime.now(UTC)
            if deadline is not None and now >= deadline:
                yield TriggerEvent({"result": result.to_dict(), "timed_out": True})  # type: ignore[no-untyped-call]
                return
            self.log.info("Not fresh yet: %s", result.summary)
            wait = self.poke_interval
            if deadline is not None:
                wait = min(wait, max((deadline - now).total_seconds(), 0.0))
            await asyncio.sleep(wait)
