# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runner states, derived (never stored) from a pool's VMs and GitHub runners at `now`.

The state table of the design, with its overlaps resolved in this order:

1. GitHub says busy -> ``busy``, whatever the VM or the clock say (a busy runner
   is never a deletion candidate; GitHub would refuse with 422 anyway).
2. VM in ERROR -> ``failed`` at once: Nova will not run it, so waiting for a
   grace period would only hold quota and delay the replacement.
3. VM powered off or being deleted (SHUTOFF, DELETED, SOFT_DELETED) -> ``finished``
   at once, whatever GitHub still lists: the runner powered its VM off and nothing
   can bring it back. (The history cannot tell a failed start from a short job run
   between two reconciles, so it is not used here.) The registration grace only
   guards VMs that are still running against the listing race below.
4. VM that may run (BUILD, ACTIVE, anything else: `VmInfo.may_run`) without a GitHub runner ->
   ``booting`` before `registration_grace`, then ``finished`` (its ephemeral
   runner ran and GitHub removed it). The grace covers the moment between the
   runner listing and the server listing of one reconcile.
5. VM running, runner offline: seen online before -> ``lost`` once it has been
   offline for `offline_grace` (``idle`` until then); never seen online (or no
   history) -> ``booting`` before `bootstrap_timeout`, then ``failed``.
6. VM running, runner online -> ``idle``.
7. Runner without a VM -> ``orphan`` once `registration_grace` has passed since
   it was first seen; until then ``booting``/``idle`` (its VM is being created).
   Without history its age is unknown and it is taken as old: callers that race
   with a concurrent spawner must pass the history. A runner the reactive consumer
   reserved room for (`in_flight`, kept in the pool's state) counts its age from
   the reservation: its JIT record exists before its VM does.
8. ``booting`` or ``idle`` past `max_lifetime` -> ``expired``.

"Was online" cannot be read from GitHub, which only tells the current status.
`RunnerHistory` remembers, per runner name, when it was first seen, first seen
online, and first seen offline after having been online. The reconcile calls
`observe` on each listing (before `derive_states`) and persists the result.

Scopes: a VM is joined with the runner of its name in the scope recorded on the VM
(`VmInfo.scope`), never with a runner of the same name in another scope; a VM that
records none (created before scopes were recorded) and a runner listed without one
take the pool's scope.
"""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

from ansible_collections.selfhosted.github_runners.plugins.module_utils._identity import (
    format_timestamp,
    parse_timestamp,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    GithubRunner,
    PoolTiming,
    RunnerState,
    RunnerView,
    Scope,
    VmInfo,
)

Timestamps = t.Mapping[str, datetime.datetime]
#: Runners and VMs are joined by the scope the runner is registered in and the name.
_JoinKey = t.Tuple[t.Optional[Scope], str]


@dataclasses.dataclass(frozen=True)
class RunnerHistory:
    """What earlier listings saw of each runner (by name); see `observe`."""

    first_seen: Timestamps = dataclasses.field(default_factory=dict)
    online_since: Timestamps = dataclasses.field(default_factory=dict)  # first seen online
    offline_since: Timestamps = dataclasses.field(default_factory=dict)  # first seen offline after online

    def was_online(self, name: str) -> bool:
        return name in self.online_since

    def to_dict(self) -> t.Dict[str, t.Dict[str, str]]:
        """A JSON-able form, for the reconcile to persist next to the pool lock."""
        return {
            "first_seen": _format_all(self.first_seen),
            "online_since": _format_all(self.online_since),
            "offline_since": _format_all(self.offline_since),
        }

    @classmethod
    def from_dict(cls, data: object) -> RunnerHistory:
        """The history read back from `to_dict` output; unreadable entries are dropped, never raises."""
        if not isinstance(data, t.Mapping):
            return cls()
        return cls(
            first_seen=_parse_all(data.get("first_seen")),
            online_since=_parse_all(data.get("online_since")),
            offline_since=_parse_all(data.get("offline_since")),
        )


def observe(
    history: t.Optional[RunnerHistory], runners: t.Sequence[GithubRunner], now: datetime.datetime
) -> RunnerHistory:
    """The history after seeing `runners` at `now`. Runners no longer listed are forgotten."""
    _require_aware(now)
    old = history or RunnerHistory()
    first_seen: t.Dict[str, datetime.datetime] = {}
    online_since: t.Dict[str, datetime.datetime] = {}
    offline_since: t.Dict[str, datetime.datetime] = {}
    for runner in runners:
        name = runner.name
        first_seen[name] = old.first_seen.get(name, now)
        # A busy runner took a job, so it has been online even if no listing saw it so.
        if runner.online or runner.busy or name in old.online_since:
            online_since[name] = old.online_since.get(name, now)
            if not runner.online:
                offline_since[name] = old.offline_since.get(name, now)
    return RunnerHistory(first_seen=first_seen, online_since=online_since, offline_since=offline_since)


def record_created(history: RunnerHistory, names: t.Iterable[str], when: datetime.datetime) -> RunnerHistory:
    """The history with runners this reconcile created, so their age counts from their creation.

    Without it, a runner whose VM vanished before the next listing would look new then,
    and wait another registration_grace before it is cleaned up as an orphan.
    """
    first_seen = dict(history.first_seen)
    for name in names:
        first_seen.setdefault(name, when)
    return dataclasses.replace(history, first_seen=first_seen)


def derive_states(
    vms: t.Sequence[VmInfo],
    runners: t.Sequence[GithubRunner],
    now: datetime.datetime,
    timing: PoolTiming,
    history: t.Optional[RunnerHistory] = None,
    scope: t.Optional[Scope] = None,
    spec: t.Optional[str] = None,
    in_flight: t.Optional[Timestamps] = None,
) -> t.List[RunnerView]:
    """Join VMs and GitHub runners by scope and name and derive each one's state, sorted by name.

    `scope` is the pool's scope, for VMs that record none and runners listed without one.
    `spec` is the hash of the pool's current spec: a VM that records another one is outdated
    (whatever its state); one that records none is not (unknown).
    """
    _require_aware(now)
    by_key: t.Dict[_JoinKey, GithubRunner] = {}
    for runner in sorted(runners, key=lambda r: r.id):
        by_key.setdefault((runner.scope or scope, runner.name), runner)
    joined = _join(vms, by_key, scope)
    views = [_view(vm, runner, now, timing, history, scope, spec, in_flight) for vm, runner in joined]
    return sorted(views, key=lambda v: (v.name, v.vm.id if v.vm else "", v.github.id if v.github else 0))


def _join(
    vms: t.Sequence[VmInfo], runners: t.Mapping[_JoinKey, GithubRunner], scope: t.Optional[Scope]
) -> t.List[t.Tuple[t.Optional[VmInfo], t.Optional[GithubRunner]]]:
    """Pairs of (VM, runner) with the same name in the same scope.

    Nova allows duplicate names: the runner goes with the VM whose metadata holds
    its id, else with the oldest VM; other VMs of that name stand alone (and end
    as ``finished`` once past the registration grace).
    """
    pairs: t.List[t.Tuple[t.Optional[VmInfo], t.Optional[GithubRunner]]] = []
    groups: t.Dict[_JoinKey, t.List[VmInfo]] = {}
    for vm in vms:
        groups.setdefault((vm.scope or scope, vm.name), []).append(vm)
    for key, group in groups.items():
        runner = runners.get(key)
        group.sort(key=lambda vm: (vm.created_at, vm.id))
        if runner is not None:
            group.sort(key=lambda vm: vm.runner_id != runner.id)  # stable: the oldest match first
        pairs.append((group[0], runner))
        pairs.extend((vm, None) for vm in group[1:])
    pairs.extend((None, runner) for key, runner in runners.items() if key not in groups)
    return pairs


def _view(
    vm: t.Optional[VmInfo],
    runner: t.Optional[GithubRunner],
    now: datetime.datetime,
    timing: PoolTiming,
    history: t.Optional[RunnerHistory],
    pool_scope: t.Optional[Scope],
    spec: t.Optional[str] = None,
    in_flight: t.Optional[Timestamps] = None,
) -> RunnerView:
    name = vm.name if vm is not None else runner.name if runner is not None else ""
    # The join matched runner and VM by scope: either one tells it.
    recorded = runner.scope if runner is not None else vm.scope if vm is not None else None
    scope = recorded or pool_scope
    if vm is not None:
        age: t.Optional[float] = _seconds(now, vm.created_at)
    elif in_flight and name in in_flight:
        age = _seconds(now, in_flight[name])
    elif history is not None and name in history.first_seen:
        age = _seconds(now, history.first_seen[name])
    else:
        # Unknown age of a runner without VM; observe() before derive_states() avoids this.
        age = None if history is None else 0.0
    state = _state(vm, runner, age, now, timing, history)
    outdated = spec is not None and vm is not None and vm.spec is not None and vm.spec != spec
    return RunnerView(name=name, state=state, vm=vm, github=runner, age=age or 0.0, scope=scope, outdated=outdated)


def _state(
    vm: t.Optional[VmInfo],
    runner: t.Optional[GithubRunner],
    age: t.Optional[float],
    now: datetime.datetime,
    timing: PoolTiming,
    history: t.Optional[RunnerHistory],
) -> RunnerState:
    if runner is not None and runner.busy:
        return RunnerState.BUSY
    if vm is None:
        if runner is None:
            raise ValueError("a runner view needs a VM or a GitHub runner")
        if age is None or age >= timing.registration_grace:
            return RunnerState.ORPHAN
        state = RunnerState.IDLE if runner.online else RunnerState.BOOTING
    elif vm.failed:
        return RunnerState.FAILED
    elif vm.ended:
        return RunnerState.FINISHED
    elif runner is None:
        if age is not None and age >= timing.registration_grace:
            return RunnerState.FINISHED
        state = RunnerState.BOOTING
    elif runner.online:
        state = RunnerState.IDLE
    elif history is not None and history.was_online(runner.name):
        offline_since = history.offline_since.get(runner.name, now)
        if _seconds(now, offline_since) >= timing.offline_grace:
            return RunnerState.LOST
        state = RunnerState.IDLE  # a short blip: keep it within the offline grace
    elif age is not None and age >= timing.bootstrap_timeout:
        return RunnerState.FAILED
    else:
        state = RunnerState.BOOTING
    if age is not None and age >= timing.max_lifetime:
        return RunnerState.EXPIRED
    return state


def _seconds(now: datetime.datetime, since: datetime.datetime) -> float:
    """Seconds from `since` to `now`; never negative (clock skew between hosts)."""
    return max(0.0, (now - since).total_seconds())


def _require_aware(now: datetime.datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")


def _format_all(times: Timestamps) -> t.Dict[str, str]:
    return {name: format_timestamp(moment) for name, moment in sorted(times.items())}


def _parse_all(data: object) -> t.Dict[str, datetime.datetime]:
    if not isinstance(data, t.Mapping):
        return {}
    parsed: t.Dict[str, datetime.datetime] = {}
    for name, text in data.items():
        moment = parse_timestamp(text)
        if isinstance(name, str) and moment is not None:
            parsed[name] = moment
    return parsed


# Spawns in flight ----------------------------------------------------------------------------
#: Where the pool's state keeps the consumer's reservations: runner name -> when room was reserved.
IN_FLIGHT_KEY = "in_flight"


def in_flight_spawns(
    state: t.Mapping[str, t.Any], now: datetime.datetime, timing: PoolTiming
) -> t.Dict[str, datetime.datetime]:
    """The reservations of the pool's state still in flight: younger than `registration_grace`.

    A spawn takes seconds; a reservation older than the grace belongs to a consumer that
    died mid-spawn, and its runner (if any) is judged by the state table like any other.
    """
    reserved = _parse_all(state.get(IN_FLIGHT_KEY))
    return {name: at for name, at in reserved.items() if _seconds(now, at) < timing.registration_grace}


def with_in_flight(
    state: t.Mapping[str, t.Any],
    names: t.Iterable[str],
    now: datetime.datetime,
    timing: PoolTiming,
    seen: t.AbstractSet[str] = frozenset(),
) -> t.Dict[str, t.Any]:
    """The pool's state with `names` reserved at `now`; expired reservations and those `seen` listed dropped."""
    reserved = {name: at for name, at in in_flight_spawns(state, now, timing).items() if name not in seen}
    reserved.update({name: now for name in names})
    return {**state, IN_FLIGHT_KEY: _format_all(reserved)}


# The consumer's census -----------------------------------------------------------------------
#: Where the pool's state keeps the consumer's last server count: {"at": when, "names": [...]}.
CENSUS_KEY = "census"
#: How long a census stands in for a server listing; never longer than half the registration grace,
#: so that every spawn reserved since it was taken is still counted as in flight.
CENSUS_TTL = 10.0
#: A census dated further ahead than this (another host's clock) is not trusted.
_CENSUS_SKEW = 2.0


def fresh_census(
    state: t.Mapping[str, t.Any], now: datetime.datetime, timing: PoolTiming
) -> t.Optional[t.FrozenSet[str]]:
    """The names of the pool's servers that may run, as the last consumer counted them; None when stale.

    A census stands in for the server listing a consumer needs to count the pool against
    `max_runners`. It can only count too many: servers deleted since are still in it, and
    servers created since are either reservations in flight (counted beside it) or the
    reconcile's, which drops the census before it creates anything.
    """
    census = state.get(CENSUS_KEY)
    if not isinstance(census, t.Mapping):
        return None
    at = parse_timestamp(census.get("at"))
    names = census.get("names")
    if at is None or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    age = (now - at).total_seconds()
    if age < -_CENSUS_SKEW or age >= min(CENSUS_TTL, timing.registration_grace / 2):
        return None
    return frozenset(names)


def with_census(state: t.Mapping[str, t.Any], names: t.Iterable[str], now: datetime.datetime) -> t.Dict[str, t.Any]:
    """The pool's state with a census of `names` taken at `now` (from a server listing)."""
    return {**state, CENSUS_KEY: {"at": format_timestamp(now), "names": sorted(set(names))}}


def without_census(state: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The pool's state for a holder that creates servers the census does not know of."""
    return {key: value for key, value in state.items() if key != CENSUS_KEY}
