"""The reconcile and the job queue: counts of unserved jobs, the larger count, backfill routing, failures."""

from __future__ import annotations

import datetime
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import QueueError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import QueuedJob, Scope, ScopeKind
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.backlog import (
    Backlog,
    larger_counts,
    outcome_counts,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.job import Job, JobStatus
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.queue import EnqueueOutcome
from ansible_collections.selfhosted.github_runners.plugins.module_utils._reconcile import (
    ReconcileOptions,
    Reconciler,
)
from tests.unit.plugins.module_utils.fakes import NOW, FakeCloud, FakeGithub, MemoryLock
from tests.unit.plugins.module_utils.test_manager import SCOPE, make_pool


class FakeQueue:
    """The queue's two calls the reconcile makes: counts as set, jobs kept by id."""

    def __init__(self, unserved: t.Mapping[str, int] | None = None) -> None:
        self.counts = dict(unserved or {})
        self.jobs: dict[str, Job] = {}
        self.asked: list[tuple[list[str], datetime.datetime]] = []
        self.fail_count = False
        self.fail_enqueue_after: int | None = None  # enqueues that succeed before MongoDB "goes away"
        self.enqueues = 0

    def unserved(self, pools: t.Sequence[str], received_before: datetime.datetime) -> dict[str, int]:
        self.asked.append((list(pools), received_before))
        if self.fail_count:
            raise QueueError("MongoDB count of unserved jobs in github_runners.jobs: ServerSelectionTimeoutError")
        return {name: count for name, count in self.counts.items() if name in pools}

    def enqueue(self, job: Job) -> EnqueueOutcome:
        if self.fail_enqueue_after is not None and self.enqueues >= self.fail_enqueue_after:
            raise QueueError("MongoDB upsert: AutoReconnect")
        self.enqueues += 1
        if job.id in self.jobs:
            return EnqueueOutcome.UNCHANGED
        self.jobs[job.id] = job
        return EnqueueOutcome.INSERTED


def queued(job_id: int, *labels: str, repository: str = "octo-org/app") -> QueuedJob:
    return QueuedJob(job_id, 100 + job_id, repository, labels)


def setup_function() -> None:
    MemoryLock.states.clear()


# Pure parts -----------------------------------------------------------------------------------


def test_larger_counts_takes_the_larger_per_pool_not_the_sum() -> None:
    assert larger_counts(["a", "b", "c"], {"a": 3, "b": 1}, {"a": 2, "b": 4}) == {"a": 3, "b": 4, "c": 0}
    assert larger_counts(["a"], None, {"a": 2}) == {"a": 2}  # one side not counted
    assert larger_counts(["a"], None, None) == {"a": 0}
    assert larger_counts(["a"], {"other": 7}) == {"a": 0}  # counts of pools not asked for do not leak in


def test_outcome_counts_have_every_outcome() -> None:
    outcomes = [EnqueueOutcome.INSERTED, EnqueueOutcome.UNCHANGED, EnqueueOutcome.INSERTED]
    assert outcome_counts(outcomes) == {"inserted": 2, "updated": 0, "unchanged": 1}
    assert outcome_counts([]) == {"inserted": 0, "updated": 0, "unchanged": 0}


# Backlog.serve --------------------------------------------------------------------------------


def test_counts_jobs_received_before_the_grace() -> None:
    queue = FakeQueue({"small": 2})
    report = Backlog(queue, grace=90, clock=lambda: NOW).serve(["small", "gpu"], None, {})
    assert queue.asked == [(["small", "gpu"], NOW - datetime.timedelta(seconds=90))]
    assert report.counted
    assert report.sized_for() == {"small": 2, "gpu": 0}
    assert report.to_dict() == {
        "counted": True,
        "pools": {
            "small": {"queued": 2, "sized_for": 2, "backfill": None},
            "gpu": {"queued": 0, "sized_for": 0, "backfill": None},
        },
    }
    assert report.notes == ()


def test_a_failed_count_sizes_for_github_alone_with_a_note_and_skips_the_backfill() -> None:
    queue = FakeQueue({"small": 5})
    queue.fail_count = True
    report = Backlog(queue, backfill=True, clock=lambda: NOW).serve(
        ["small"], {"small": 1}, {"small": [queued(1, "small")]}
    )
    assert not report.counted
    assert report.sized_for() == {"small": 1}
    assert report.pools["small"].queued is None
    assert queue.jobs == {}
    assert any("not counted" in n and "ServerSelectionTimeoutError" in n for n in report.notes)
    assert any("job_queue_backfill: skipped" in n for n in report.notes)


def test_backfill_enqueues_each_found_job_in_its_pool_and_is_idempotent() -> None:
    queue = FakeQueue()
    backlog = Backlog(queue, backfill=True, api_host="ghes.example.com", clock=lambda: NOW)
    found = {"small": [queued(2, "small"), queued(1, "small")], "gpu": [queued(3, "gpu")]}
    first = backlog.serve(["small", "gpu"], None, found)
    assert first.pools["small"].backfill == {"inserted": 2, "updated": 0, "unchanged": 0}
    assert first.pools["gpu"].backfill == {"inserted": 1, "updated": 0, "unchanged": 0}
    job = queue.jobs["ghes.example.com/octo-org/app/3"]
    assert (job.pool, job.status, job.received_at, job.labels) == ("gpu", JobStatus.QUEUED, NOW, ("gpu",))
    # Enqueued now, so younger than any grace: they do not size the pools in this run.
    assert first.sized_for() == {"small": 0, "gpu": 0}
    second = backlog.serve(["small", "gpu"], None, found)
    assert second.pools["small"].backfill == {"inserted": 0, "updated": 0, "unchanged": 2}
    assert len(queue.jobs) == 3


def test_check_mode_reads_and_backfills_nothing() -> None:
    queue = FakeQueue({"small": 1})
    report = Backlog(queue, backfill=True, clock=lambda: NOW).serve(
        ["small"], None, {"small": [queued(1, "small")]}, check_mode=True
    )
    assert report.sized_for() == {"small": 1}
    assert report.pools["small"].backfill is None
    assert queue.jobs == {} and queue.enqueues == 0


def test_a_mongodb_failure_during_the_backfill_stops_it_with_a_note() -> None:
    queue = FakeQueue()
    queue.fail_enqueue_after = 1
    found = {"small": [queued(i, "small") for i in range(1, 5)]}
    report = Backlog(queue, backfill=True, clock=lambda: NOW).serve(["small"], None, found)
    assert len(queue.jobs) == 1
    assert report.pools["small"].backfill == {"inserted": 1, "updated": 0, "unchanged": 0}
    assert any("3 queued jobs were not put into the queue" in n for n in report.notes)


def test_a_job_that_cannot_be_a_document_is_skipped_with_a_note() -> None:
    queue = FakeQueue()
    found = {"small": [queued(1, "small"), queued(2, "bad\nlabel")]}
    report = Backlog(queue, backfill=True, clock=lambda: NOW).serve(["small"], None, found)
    assert list(queue.jobs) == ["api.github.com/octo-org/app/1"]
    assert any("job 2" in n and "not enqueued" in n for n in report.notes)


def test_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError):
        Backlog(FakeQueue(), grace=-1)


# Through the reconcile -----------------------------------------------------------------------


def reconcile(
    github: FakeGithub, queue: FakeQueue, pools: list[t.Any], *, backfill: bool = False, **options: t.Any
) -> t.Any:
    backlog = Backlog(queue, backfill=backfill, clock=lambda: NOW)
    reconciler = Reconciler(github, FakeCloud(), lambda key: MemoryLock(key, []), clock=lambda: NOW, backlog=backlog)
    return reconciler.run(pools, ReconcileOptions("ci1", **options))


def test_unserved_jobs_size_the_pool_within_max_runners() -> None:
    github = FakeGithub()
    report = reconcile(github, FakeQueue({"small": 7}), [make_pool(min_idle=1, max_runners=5)])
    assert len(report.pools[0].execution.created) == 5
    assert report.as_dict()["job_queue"]["pools"]["small"] == {"queued": 7, "sized_for": 7, "backfill": None}
    assert github.calls["list_queued_jobs"] == 0  # the queue alone costs no GitHub request


def test_with_github_counting_too_the_larger_count_sizes_the_pool() -> None:
    github = FakeGithub()
    github.queued[SCOPE] = [queued(1, "small"), queued(2, "small")]
    pool = make_pool(min_idle=0, max_runners=10)
    report = reconcile(github, FakeQueue({"small": 3}), [pool], count_queued_jobs=True)
    assert len(report.pools[0].execution.created) == 3  # max(3, 2), not 5
    assert report.as_dict()["job_queue"]["pools"]["small"]["sized_for"] == 3


def test_backfill_routes_jobs_to_the_first_matching_pool_and_skips_unmatched_ones() -> None:
    github = FakeGithub()
    org = Scope(ScopeKind.ORGANIZATION, "octo-org")
    github.queued[SCOPE] = [queued(1, "small"), queued(2, "gpu"), queued(3, "big")]
    github.queued[org] = [queued(4, "small", repository="octo-org/other")]
    small = make_pool(name="small", labels=("self-hosted", "small"), min_idle=0)
    anything = make_pool(name="any", labels=("self-hosted", "small", "gpu"), min_idle=0)
    in_org = make_pool(name="org", scope=org, labels=("self-hosted", "small"), min_idle=0)
    queue = FakeQueue()
    report = reconcile(github, queue, [small, anything, in_org], backfill=True)
    assert {job_id: job.pool for job_id, job in queue.jobs.items()} == {
        "api.github.com/octo-org/app/1": "small",
        "api.github.com/octo-org/app/2": "any",
        "api.github.com/octo-org/other/4": "org",
    }
    # Without count_queued_jobs the jobs found only go into the queue: no runner for them in this run.
    assert not report.changed
    assert report.as_dict()["queued_jobs"]["found"] == 4


def test_the_queue_is_not_read_for_absent_pools() -> None:
    queue = FakeQueue({"small": 3})
    reconcile(FakeGithub(), queue, [make_pool()], mode="absent", backfill=True)
    assert queue.asked == [] and queue.enqueues == 0
