"""Training runs: on request (TrainModel) and on a schedule, never blocking serving.

A run reads the event log through its own connection, fits in a worker thread and
publishes through the model store, whose alias switch makes the new version serve at
once. One run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from cadenza.kit.errors import FailedPrecondition, InvalidArgument
from services.recommend import fitting, metrics, quality
from services.recommend.events import EventStore
from services.recommend.model import ModelStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRun:
    """One training run, as GetModelStatus reports it."""

    run_id: str
    algorithm: str
    state: str  # running, succeeded, failed
    started_at_unix_s: float
    duration_s: float = 0.0
    events_used: int = 0
    users: int = 0
    items: int = 0
    model_version: str = ""
    error: str = ""
    # The event log's last sequence when the run read it (what "new events" means).
    last_sequence: int = 0


@dataclass(frozen=True)
class ModelStatus:
    """The serving model's version and the latest training run."""

    model_version: str
    latest_run: TrainingRun | None


class Trainer:
    """Runs training on request and on a schedule, one run at a time."""

    def __init__(self, store: EventStore, models: ModelStore, default_algorithm: str,
                 interval_s: float, holdout_users: int = quality.MAX_USERS,
                 published: Callable[[], None] | None = None) -> None:
        if default_algorithm not in fitting.MEMBERS:
            raise ValueError(f"default_algorithm {default_algorithm!r}: use one of "
                             f"{', '.join(fitting.MEMBERS)}")
        self.store = store
        self.models = models
        self.default_algorithm = default_algorithm
        self.interval_s = interval_s
        self.holdout_users = holdout_users
        # Called after each publish (the content copy checks the catalogue then).
        self.published = published
        self.latest: TrainingRun | None = None
        self._task: asyncio.Task[None] | None = None
        self._schedule: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Loads the serving model, shows its figures, and starts the schedule."""
        await self.models.load()
        serving = self.models.serving
        if serving is not None and "training_run" in serving.manifest.run:
            self.latest = TrainingRun(**serving.manifest.run["training_run"])
            metrics.show_serving_model(
                serving.manifest.algorithm, serving.manifest.run.get("quality", {}),
                self.latest.started_at_unix_s + self.latest.duration_s)
        if self.interval_s > 0:
            self._schedule = asyncio.create_task(self._every_interval())

    async def stop(self) -> None:
        """Cancels the schedule and any run in progress."""
        for task in (self._schedule, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def train(self, algorithm: str = "") -> TrainingRun:
        """Starts a run and returns it at once (state "running")."""
        algorithm = algorithm or self.default_algorithm
        if algorithm not in fitting.MEMBERS:
            raise InvalidArgument("algorithm", f"unknown algorithm {algorithm[:40]!r}; use one "
                                               f"of {', '.join(fitting.MEMBERS)}")
        if self._task is not None and not self._task.done():
            raise FailedPrecondition(f"training run {self.latest.run_id if self.latest else ''} "
                                     "is still running; poll GetModelStatus and retry after it")
        sequence = await asyncio.to_thread(self.store.last_sequence)
        if sequence == 0:
            raise FailedPrecondition("no events recorded yet; record plays, likes ... first")
        run = TrainingRun(uuid.uuid4().hex[:12], algorithm, "running", time.time(),
                          last_sequence=sequence)
        self.latest = run
        self._task = asyncio.create_task(self._run(run))
        return run

    async def status(self) -> ModelStatus:
        """The serving model's version and the latest run."""
        serving = self.models.serving
        return ModelStatus(serving.manifest.version if serving else "", self.latest)

    async def wait(self) -> TrainingRun | None:
        """Waits for the run in progress, if any (the schedule runs one at a time)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.latest

    async def cancel(self, run_id: str) -> None:
        """Cancels the run if it is still the one in progress. It stops at its next step
        (a step already in a worker thread finishes there) and publishes nothing."""
        task = self._task
        if task is None or task.done() or self.latest is None or \
                self.latest.run_id != run_id:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self, run: TrainingRun) -> None:
        started = time.perf_counter()
        try:
            engagements = await asyncio.to_thread(self.store.all_engagements)
            version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{run.run_id}"
            model = await asyncio.to_thread(fitting.fit, engagements, run.algorithm, version)
            scores = {}
            if self.holdout_users > 0:
                scores = await asyncio.to_thread(quality.holdout_quality, engagements,
                                                 run.algorithm, self.holdout_users)
            model.manifest.run["quality"] = scores
            stats = model.manifest.run
            done = replace(run, state="succeeded", events_used=stats["engagements"],
                           users=stats["users"], items=stats["items"], model_version=version)
            # The run record travels with the model, so status survives a restart.
            done = replace(done, duration_s=time.perf_counter() - started)
            model.manifest.run["training_run"] = done.__dict__
            await self.models.publish(model)
            metrics.show_serving_model(run.algorithm, scores, time.time())
            if self.published is not None:
                self.published()
            done = replace(done, duration_s=time.perf_counter() - started)
            metrics.TRAINING_SECONDS.labels(run.algorithm).observe(done.duration_s)
            metrics.TRAINING_RUNS.labels(run.algorithm, "succeeded").inc()
            logger.info("training run %s succeeded in %.1f s: %s", run.run_id,
                        done.duration_s, version)
        except asyncio.CancelledError:
            logger.info("training run %s cancelled", run.run_id)
            metrics.TRAINING_RUNS.labels(run.algorithm, "cancelled").inc()
            self.latest = replace(run, state="cancelled",
                                  duration_s=time.perf_counter() - started)
            raise
        except Exception as error:  # a failed run must not take serving down
            logger.exception("training run %s failed", run.run_id)
            metrics.TRAINING_RUNS.labels(run.algorithm, "failed").inc()
            done = replace(run, state="failed", error=str(error)[:500],
                           duration_s=time.perf_counter() - started)
        self.latest = done

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                sequence = await asyncio.to_thread(self.store.last_sequence)
                trained = self.latest.last_sequence if self.latest else 0
                if sequence > trained:
                    await self.train()
                    await self.wait()
            except (FailedPrecondition, InvalidArgument) as error:
                logger.info("scheduled training skipped: %s", error)
            except Exception:  # the schedule must outlive one bad run
                logger.exception("scheduled training failed")
