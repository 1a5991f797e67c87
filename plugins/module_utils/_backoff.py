# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Creation backoff of a pool: after failed creations, wait before creating again.

Pure functions of what a reconcile saw and did; the reconcile keeps the result in the
pool's lock state (key ``backoff``), so the next run, on any host, goes on from it.

Rules:

- A failed creation is a server create the cloud refused (quota 403, 5xx, ...) or a VM
  of the pool in ERROR whose runner was never seen online: an ERROR at boot, such as
  "No valid host was found." or "Quota exceeded for instances: ..." (Nova lets racing
  creates past its quota check, then puts them into ERROR). Each ERROR VM counts once,
  however many listings show it.
- Each reconcile that records failed creations is one more failed round. Creations then
  wait for a delay that doubles per round, between half and all of
  ``min(max, base * 2 ** (rounds - 1))`` (the jitter spreads pools and hosts that failed
  together), with ``base``/``max`` from the pool's ``creation_backoff``/``creation_backoff_max``.
- A VM of the pool that reaches ACTIVE with its runner online (first seen online by this
  listing) ends the streak. Seen in the same listing as a failure, the success wins: the
  cloud can create again.
- While the delay runs, the plan creates nothing (`hold_creations`); deletions go on, but
  outdated runners are not replaced meanwhile.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import plain_text
from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    format_timestamp,
    parse_timestamp,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import Plan, RunnerView
from ansible_collections.selfhosted.github_runners.plugins.module_utils._planner import without_creations
from ansible_collections.selfhosted.github_runners.plugins.module_utils._retry import backoff as jittered_delay

#: What a creation failure says about the cloud.
FaultKind = t.Literal["quota", "no_valid_host", "error"]

#: Fault text of an ERROR VM whose listing carries no fault.
NO_FAULT_TEXT = "the server went to ERROR without a fault message"
_MAX_FAULT = 500  # characters kept of a fault text (Nova's own are at most 255)


def classify_fault(text: str) -> FaultKind:
    """``quota`` for a quota refusal (at the create call or through ERROR), ``no_valid_host`` when
    no compute host can take the flavor, else ``error``."""
    folded = text.casefold()
    if "quota exceeded" in folded or "quota_exceeded" in folded or "exceeds quota" in folded:
        return "quota"
    if "no valid host" in folded:
        return "no_valid_host"
    return "error"


@dataclasses.dataclass(frozen=True)
class CreationBackoff:
    """A pool's streak of failed creations and when it may create again."""

    failures: int = 0  # consecutive failed creations
    rounds: int = 0  # consecutive reconciles that recorded failed creations
    until: t.Optional[datetime.datetime] = None  # no creation before this
    last_fault: t.Optional[str] = None
    counted: t.Tuple[str, ...] = ()  # ids of the ERROR VMs already counted

    @property
    def fault_kind(self) -> t.Optional[FaultKind]:
        return classify_fault(self.last_fault) if self.last_fault is not None else None

    def active(self, now: datetime.datetime) -> bool:
        """Whether creations wait at `now`."""
        return self.until is not None and now < self.until

    def to_dict(self) -> t.Dict[str, t.Any]:
        """A JSON-able form for the pool's lock state."""
        return {
            "failures": self.failures,
            "rounds": self.rounds,
            "until": format_timestamp(self.until) if self.until is not None else None,
            "last_fault": self.last_fault,
            "counted": list(self.counted),
        }

    @classmethod
    def from_dict(cls, data: object) -> CreationBackoff:
        """The backoff read back from `to_dict` output; unreadable parts fall back to none, never raises."""
        if not isinstance(data, t.Mapping):
            return cls()
        fault = data.get("last_fault")
        counted = data.get("counted")
        return cls(
            failures=_count(data.get("failures")),
            rounds=_count(data.get("rounds")),
            until=parse_timestamp(data.get("until")),
            last_fault=fault if isinstance(fault, str) else None,
            counted=tuple(i for i in counted if isinstance(i, str)) if isinstance(counted, list) else (),
        )


def after_failures(
    previous: CreationBackoff,
    faults: t.Sequence[str],
    now: datetime.datetime,
    *,
    base: float,
    cap: float,
    rng: t.Callable[[], float] = random.random,
) -> CreationBackoff:
    """The backoff after one reconcile recorded `faults` (one text per failed creation); unchanged without any."""
    if not faults:
        return previous
    rounds = previous.rounds + 1
    delay = jittered_delay(rounds, base, cap, rng)
    return dataclasses.replace(
        previous,
        failures=previous.failures + len(faults),
        rounds=rounds,
        until=now + datetime.timedelta(seconds=delay),
        last_fault=plain_text(faults[-1])[:_MAX_FAULT] or NO_FAULT_TEXT,
    )


def observe_boots(
    previous: CreationBackoff,
    views: t.Sequence[RunnerView],
    was_online: t.Callable[[str], bool],
    now: datetime.datetime,
    *,
    base: float,
    cap: float,
    rng: t.Callable[[], float] = random.random,
) -> CreationBackoff:
    """The backoff after a listing: its new ERROR-at-boot VMs are failures, a runner that came online ends the streak.

    `was_online(name)` tells whether an earlier listing saw the runner online (the saved history).
    """
    new = [view for view in views if not was_online(view.name)]
    failed = [v.vm for v in new if v.vm is not None and v.vm.status.upper() == "ERROR" and not _up(v)]
    counted = tuple(sorted(vm.id for vm in failed))
    if any(v.vm is not None and v.vm.status.upper() == "ACTIVE" and _up(v) for v in new):
        return CreationBackoff(counted=counted)
    faults = [vm.fault or NO_FAULT_TEXT for vm in failed if vm.id not in previous.counted]
    return dataclasses.replace(after_failures(previous, faults, now, base=base, cap=cap, rng=rng), counted=counted)


def hold_creations(plan: Plan, backoff: CreationBackoff, now: datetime.datetime) -> Plan:
    """The plan without its creations while the backoff runs (they are reported as `held`)."""
    if plan.create == 0 or not backoff.active(now):
        return plan
    return without_creations(plan)


def _up(view: RunnerView) -> bool:
    """The runner is online (or took a job, so it was)."""
    return view.github is not None and (view.github.online or view.github.busy)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
