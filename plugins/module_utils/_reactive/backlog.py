# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job queue as the reconcile sees it: the backlog no consumer served, and backfills.

The reconcile sizes each pool for the jobs of the queue that no consumer served: `queued`
(or `claimed` under an expired lease) and received longer than a grace ago. Younger jobs are
the consumer's to spawn; counting them too would start a second runner for each. So when the
consumer fails (stopped, crashed, its pool backing off), the scheduled reconcile serves the
jobs it left, one grace late.

A backfill puts the queued jobs that the GitHub API lists (webhooks GitHub never delivered)
into the queue, each routed to its pool as the count of queued jobs routes it. A backfilled
job is received now: the consumer gets its grace first, like any other new job.

MongoDB failures never fail the reconcile: the pools are sized without the queue, and a
note says so.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import QueuedJob
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import (
    DEFAULT_API_HOST,
    Job,
    JobDocumentError,
    job_from_queued_job,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.mongo import utc_now
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import EnqueueOutcome

#: Seconds a queued job is left to the consumer before the reconcile counts it.
DEFAULT_GRACE = 60.0


class QueueSource(t.Protocol):
    """What the reconcile needs of the job queue (`JobQueue` is one)."""

    def unserved(self, pools: t.Sequence[str], received_before: datetime.datetime) -> t.Dict[str, int]: ...

    def enqueue(self, job: Job) -> EnqueueOutcome: ...


@dataclasses.dataclass(frozen=True)
class PoolBacklog:
    """What the queue meant for one pool in one reconcile."""

    queued: t.Optional[int]  # unserved jobs in the queue; None when they could not be counted
    sized_for: int  # the queued jobs the pool was sized for (the larger of the queue's and GitHub's count)
    backfill: t.Optional[t.Dict[str, int]] = None  # enqueue outcomes; None without a backfill

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {"queued": self.queued, "sized_for": self.sized_for, "backfill": self.backfill}


@dataclasses.dataclass(frozen=True)
class BacklogReport:
    pools: t.Dict[str, PoolBacklog]
    counted: bool  # whether the queue was read
    notes: t.Tuple[str, ...] = ()

    def sized_for(self) -> t.Dict[str, int]:
        return {name: pool.sized_for for name, pool in self.pools.items()}

    def to_dict(self) -> t.Dict[str, t.Any]:
        return {"counted": self.counted, "pools": {name: pool.to_dict() for name, pool in self.pools.items()}}


def larger_counts(pools: t.Sequence[str], *counts: t.Optional[t.Mapping[str, int]]) -> t.Dict[str, int]:
    """Per pool the largest of the counts given (None: not counted). Not their sum: the queue and
    GitHub see the same jobs, and each needs one runner."""
    return {name: max([c.get(name, 0) for c in counts if c is not None], default=0) for name in pools}


def outcome_counts(outcomes: t.Iterable[EnqueueOutcome]) -> t.Dict[str, int]:
    """Enqueue outcomes by name, every outcome present (zeros included) so results keep one shape."""
    counted = collections.Counter(outcomes)
    return {outcome.value: counted.get(outcome, 0) for outcome in EnqueueOutcome}


class Backlog:
    """The queue's part in one reconcile: count what no consumer served, optionally backfill."""

    def __init__(
        self,
        queue: QueueSource,
        *,
        grace: float = DEFAULT_GRACE,
        backfill: bool = False,
        api_host: str = DEFAULT_API_HOST,
        clock: t.Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        if grace < 0:
            raise ValueError("grace must not be negative")
        self.queue = queue
        self.grace = grace
        self.backfill = backfill
        self.api_host = api_host  # keys backfilled jobs as the router keys this GitHub's webhooks
        self.clock = clock

    def serve(
        self,
        pools: t.Sequence[str],
        github_counts: t.Optional[t.Mapping[str, int]],
        found: t.Mapping[str, t.Sequence[QueuedJob]],
        *,
        check_mode: bool = False,
    ) -> BacklogReport:
        """Count the unserved jobs of `pools`, size each for the larger of that and `github_counts`
        (None: GitHub was not counted), and, unless `check_mode`, backfill the jobs `found` on
        GitHub (routed per pool)."""
        notes: t.List[str] = []
        now = self.clock()
        queue_counts: t.Optional[t.Dict[str, int]]
        try:
            queue_counts = self.queue.unserved(pools, now - datetime.timedelta(seconds=self.grace))
        except QueueError as exc:
            queue_counts = None
            notes.append(
                f"job_queue: the queued jobs in MongoDB were not counted ({exc}); pools are sized without them"
            )
        sized = larger_counts(pools, queue_counts, github_counts)
        backfills: t.Dict[str, t.Dict[str, int]] = {}
        if self.backfill and not check_mode:
            if queue_counts is None:
                notes.append("job_queue_backfill: skipped, MongoDB did not answer the count")
            else:
                backfills, problems = self._backfill(pools, found, now)
                notes.extend(problems)
        report = {
            name: PoolBacklog(
                None if queue_counts is None else queue_counts.get(name, 0), sized[name], backfills.get(name)
            )
            for name in pools
        }
        return BacklogReport(report, queue_counts is not None, tuple(notes))

    def _backfill(
        self, pools: t.Sequence[str], found: t.Mapping[str, t.Sequence[QueuedJob]], now: datetime.datetime
    ) -> t.Tuple[t.Dict[str, t.Dict[str, int]], t.List[str]]:
        """Enqueue outcomes per pool, and notes on what was not enqueued. Stops at the first MongoDB
        failure: the next ones would each wait out the timeout too."""
        outcomes: t.Dict[str, t.List[EnqueueOutcome]] = {name: [] for name in pools}
        invalid: t.List[str] = []
        for name in pools:
            for queued in sorted(found.get(name, ()), key=lambda job: job.id):
                try:
                    job = job_from_queued_job(queued, pool=name, api_host=self.api_host, now=now)
                except JobDocumentError as exc:
                    invalid.append(f"{queued.repository} job {queued.id}: {exc}")
                    continue
                try:
                    outcomes[name].append(self.queue.enqueue(job))
                except QueueError as exc:
                    done = sum(len(o) for o in outcomes.values()) + len(invalid)
                    left = sum(len(found.get(n, ())) for n in pools) - done
                    counts = {n: outcome_counts(o) for n, o in outcomes.items()}
                    return counts, [f"job_queue_backfill: {left} queued jobs were not put into the queue ({exc})"]
        notes = [f"job_queue_backfill: not a valid job, not enqueued: {'; '.join(invalid)}"] if invalid else []
        return {name: outcome_counts(o) for name, o in outcomes.items()}, notes
