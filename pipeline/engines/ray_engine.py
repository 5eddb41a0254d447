"""The Ray engine (`--engine ray`): batches sent by actors of a Ray cluster.

    driver: read ─ prepare ─► deal batches ──► worker actors (each: the asyncio engine)
                                                   │ grants ▲
            write ◄─ in input order ◄── outcomes ──┘        keeper actor (the account's limits)

The driver keeps what a local run keeps (the reader, the preparer, the cache
look-ups ahead of sending, the committed parts and the final files): only the
sending moves. Each batch goes to the worker with the fewest batches in hand;
complete batches are written in input order through the same OutcomeWriter, so
the outputs, the part files and resuming are the local engine's. A worker that
dies is restarted by Ray and its batches are sent to it again (the cache answers
what had already landed); a driver that dies resumes like any run.

`--concurrency` holds for each worker: each has its own connections and pool.
The rate limits (`--rpm`, `--tpm`, or learned from headers) hold for the whole
cluster, kept by the keeper (ray_limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from pipeline.core.clock import Clock
from pipeline.core.config import RunConfig
from pipeline.core.errors import ConfigError, ServiceUnavailable, SluiceError
from pipeline.core.events import (
    BatchStarted,
    EventSink,
    Heartbeat,
    ItemSettled,
)
from pipeline.core.models import Batch, Outcome
from pipeline.engines.protocol import WRITE_GROUP, NextBatch, OutcomeWriter, committed
from pipeline.engines.ray_worker import (
    BatchDone,
    EngineMaker,
    KeeperActor,
    SluiceWorker,
    for_workers,
)
from pipeline.engines.stalls import CHECK_EVERY

BATCHES_PER_WORKER = 4  # in a worker's hands at once: enough that it never waits for the next


@dataclass(slots=True)
class _Dealt:
    batch: Batch
    worker: int
    reply: asyncio.Future[BatchDone]


def start_ray(config: RunConfig) -> Any:
    """Connect to the cluster at --ray-address, or start a Ray instance on this machine,
    on loopback only, quiet, without usage reports. Returns the `ray` module."""
    address = config.engine.ray_address
    if address is not None:
        _check_reachable(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        # Ray takes the machine's outward address for its node, and its processes
        # listen there, unless told it is no cluster (its switch for a laptop's single
        # node, read when Ray is imported): then every one of them uses 127.0.0.1.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--engine ray needs Ray, an optional extra: pip install 'sluice[ray]'"
        ) from None
    quiet: dict[str, Any] = {
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "ignore_reinit_error": True,
    }
    try:
        if address is None:
            ray.init(
                address="local",
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **quiet,
            )
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "this machine"
        raise ServiceUnavailable(f"cannot start or reach Ray on {where}: {exc}") from exc
    _silence_cluster_notices(ray)
    return ray


REACH_TIMEOUT = 5.0  # seconds to open a connection to --ray-address's host


def cluster_endpoint(address: str) -> tuple[str, int] | None:
    """The host and port a --ray-address names (`host:port`, `ray://host:port`); None
    for `auto`, `local` and what Ray alone can resolve."""
    bare = address.removeprefix("ray://")
    host, colon, port = bare.rpartition(":")
    if not colon or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """A wrong or dead address fails in seconds, in one line (exit 69): Ray's own client
    retries for minutes, printing as it goes, before it gives up."""
    endpoint = cluster_endpoint(address)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=REACH_TIMEOUT).close()
    except OSError as exc:
        raise ServiceUnavailable(
            f"nothing answers at --ray-address {address}: {exc.strerror or exc}. Check the "
            "address and that the cluster is up (ray status), then run the same command again."
        ) from None


def _silence_cluster_notices(ray: Any) -> None:
    """Ray's driver prints the cluster's notices ("a worker died...") to stdout from a
    thread of its own, whatever the logging level: into results written to stdout (-o -).
    That thread stops when the driver's `threads_stopped` is set (a private of Ray's; it
    is set again, joined and cleared by ray.shutdown). What a notice reports, a worker
    restarted and its batches sent again, the run handles itself."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    stopped = getattr(getattr(worker, "global_worker", None), "threads_stopped", None)
    if stopped is not None:
        stopped.set()


class RayEngine:
    """The driver's side: deals batches to worker actors, writes what they complete."""

    def __init__(
        self,
        config: RunConfig,
        writer: OutcomeWriter,
        events: EventSink,
        clock: Clock,
        make: EngineMaker,
    ) -> None:
        self._ray = start_ray(config)
        self._writer = writer
        self._events = events
        self._clock = clock
        ray = self._ray
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        count = config.engine.ray_workers or max(1, int(cpus))
        # One CPU each when the cluster has them; a share of them when asked for more.
        each = min(1.0, cpus / count)
        keeper = f"sluice-limits-{uuid.uuid4().hex}"
        keeper_class = ray.remote(KeeperActor).options(num_cpus=0, max_restarts=-1, name=keeper)
        self._keeper = keeper_class.remote(config.traffic.shared_limits)
        worker_class = ray.remote(SluiceWorker).options(
            num_cpus=each, max_restarts=-1, max_task_retries=-1, max_concurrency=1000
        )
        keyed = config.connection.api_key is not None
        shared = for_workers(config)
        self._workers = [worker_class.remote(shared, keyed, keeper, make) for _ in range(count)]
        self._in_hand = [0] * count
        self._window = asyncio.Semaphore(BATCHES_PER_WORKER * count)
        self._dealt: deque[_Dealt] = deque()
        self._more = asyncio.Event()  # a batch was dealt, or dealing ended
        self._dealing_over = False
        self._producer: asyncio.Task[None] | None = None
        self._stopping = False
        self._grace = 0.0
        self._fatal: SluiceError | None = None

    @property
    def running(self) -> bool:
        return self._producer is not None

    def idle(self) -> bool:
        # The workers are other processes: a read on this loop would hold up the dealing
        # of batches to them, and their answers, whatever is in flight.
        return False

    async def run(self, next_batch: NextBatch) -> None:
        beat = asyncio.create_task(self._heartbeat())
        try:
            self._producer = asyncio.create_task(self._deal(next_batch))
            await self._write()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
        finally:
            beat.cancel()
            if self._producer is not None:
                self._producer.cancel()
            await self._close()
        if self._fatal is not None:
            raise self._fatal

    def stop(self, grace: float) -> None:
        if self._stopping:
            return
        self._stopping, self._grace = True, grace
        if self._producer is not None:
            self._producer.cancel()
        for worker in self._workers:
            worker.stop.remote(grace)
        self._end_dealing()

    def end_run(self, error: SluiceError, grace: float = 0) -> None:
        self._fatal = self._fatal or error
        self.stop(grace)

    async def _deal(self, next_batch: NextBatch) -> None:
        try:
            while (prepared := await next_batch()) is not None:
                await self._window.acquire()
                batch = prepared.batch
                self._events.emit(BatchStarted(batch.index, len(batch.items), self._clock.now()))
                worker = min(range(len(self._workers)), key=self._in_hand.__getitem__)
                self._in_hand[worker] += 1
                reply = asyncio.ensure_future(self._workers[worker].process.remote(prepared))
                dealt = _Dealt(batch, worker, reply)
                reply.add_done_callback(lambda _, dealt=dealt: self._landed(dealt))
                self._dealt.append(dealt)
                self._more.set()
        except SluiceError as error:
            self.end_run(error)
        finally:
            self._end_dealing()

    def _end_dealing(self) -> None:
        self._dealing_over = True
        self._more.set()

    def _landed(self, dealt: _Dealt) -> None:
        """A worker answered: what it told goes to the run's sinks at once (progress)."""
        self._in_hand[dealt.worker] -= 1
        done = _reply(dealt)
        for event in done.events:
            self._events.emit(event)
        if done.error is not None:
            self.end_run(done.error)
        now = self._clock.now()
        for outcome in done.outcomes or ():
            self._events.emit(ItemSettled(dealt.batch.index, now, outcome))

    async def _write(self) -> None:
        while True:
            first = await self._next_dealt()
            if first is None:
                return
            done = _reply(first) if first.reply.done() else await _replied(first)
            if done.outcomes is None:
                return  # stopped before it completed: neither it nor any later one is written
            group = [(first.batch, done.outcomes)]
            while len(group) < WRITE_GROUP and self._dealt and self._dealt[0].reply.done():
                follower = _reply(self._dealt[0])
                if follower.outcomes is None:
                    break
                group.append((self._dealt.popleft().batch, follower.outcomes))
            await self._commit(group)

    async def _next_dealt(self) -> _Dealt | None:
        while not self._dealt:
            if self._dealing_over:
                return None
            self._more.clear()
            await self._more.wait()
        return self._dealt.popleft()

    async def _commit(self, group: list[tuple[Batch, list[Outcome]]]) -> None:
        await self._writer.write(group)
        for _ in group:
            self._window.release()
        self._events.emit(committed(group, self._clock.now()))

    async def _heartbeat(self) -> None:
        while True:
            await self._clock.sleep(CHECK_EVERY)
            self._events.emit(Heartbeat(self._clock.now(), None))

    async def _close(self) -> None:
        """Workers finish and tell their last events; then the actors go, and a Ray
        instance started for this run with them."""
        ray = self._ray
        closing = [worker.close.remote() for worker in self._workers]
        with contextlib.suppress(Exception):
            for events in await asyncio.wait_for(asyncio.gather(*closing), self._grace + 30):
                for event in events:
                    self._events.emit(event)
        for actor in (*self._workers, self._keeper):
            with contextlib.suppress(Exception):
                ray.kill(actor)
        ray.shutdown()


def _reply(dealt: _Dealt) -> BatchDone:
    """A landed reply; a worker lost for good ends the run (its batches are resumable)."""
    try:
        return dealt.reply.result()
    except asyncio.CancelledError:
        return BatchDone(None)
    except Exception as exc:  # a RayActorError: Ray gave up restarting the worker
        return BatchDone(None, error=ServiceUnavailable(f"a Ray worker was lost: {exc}"))


async def _replied(dealt: _Dealt) -> BatchDone:
    await asyncio.wait({dealt.reply})  # whatever it ends in; the writer stays cancellable
    return _reply(dealt)
