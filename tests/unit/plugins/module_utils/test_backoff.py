"""The creation backoff: fault kinds, jittered exponential delays, what a listing counts, holding creations."""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.selfhosted.github_runners.plugins.module_utils._backoff import (
    NO_FAULT_TEXT,
    CreationBackoff,
    after_failures,
    classify_fault,
    hold_creations,
    observe_boots,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import (
    DeleteReason,
    Deletion,
    Plan,
    RunnerState,
    RunnerView,
)
from tests.unit.plugins.module_utils.factories import NOW, gh, vm

BASE, CAP = 60.0, 1800.0
NO_VALID_HOST = "No valid host was found. "  # Nova's text, trailing space included
QUOTA_VIA_ERROR = "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"


def never_online(name: str) -> bool:
    return False


def failed_view(name: str, fault: t.Optional[str] = NO_VALID_HOST, vm_id: t.Optional[str] = None) -> RunnerView:
    """A VM in ERROR whose runner registered but never came online."""
    return RunnerView(name, RunnerState.FAILED, vm(name, "ERROR", vm_id=vm_id, fault=fault), gh(name), 30.0)


def online_view(name: str, status: str = "ACTIVE", busy: bool = False) -> RunnerView:
    state = RunnerState.BUSY if busy else RunnerState.IDLE
    return RunnerView(name, state, vm(name, status), gh(name, online=True, busy=busy), 30.0)


def observe(
    previous: CreationBackoff, views: t.Sequence[RunnerView], was_online: t.Callable[[str], bool] = never_online
) -> CreationBackoff:
    return observe_boots(previous, views, was_online, NOW, base=BASE, cap=CAP, rng=lambda: 0.5)


# --- fault kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (QUOTA_VIA_ERROR, "quota"),
        ("Quota exceeded for cores: Requested 2, but already used 40 of 40 cores", "quota"),
        ("Maximum number of metadata items exceeds 128", "error"),
        (NO_VALID_HOST, "no_valid_host"),
        ("No valid host was found. There are not enough hosts available.", "no_valid_host"),
        ("Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/", "error"),
        (NO_FAULT_TEXT, "error"),
    ],
)
def test_fault_kinds(text: str, kind: str) -> None:
    assert classify_fault(text) == kind


# --- delays ------------------------------------------------------------------------------------


def test_no_failure_changes_nothing() -> None:
    previous = CreationBackoff(failures=2, rounds=1, until=NOW, last_fault="x")
    assert after_failures(previous, [], NOW, base=BASE, cap=CAP) is previous


def test_each_failed_round_doubles_the_delay_up_to_the_cap() -> None:
    backoff, delays = CreationBackoff(), []
    for _unused in range(8):
        backoff = after_failures(backoff, ["boom", "boom"], NOW, base=BASE, cap=CAP, rng=lambda: 1.0)
        assert backoff.until is not None
        delays.append((backoff.until - NOW).total_seconds())
    assert delays == [60.0, 120.0, 240.0, 480.0, 960.0, 1800.0, 1800.0, 1800.0]
    assert backoff.failures == 16 and backoff.rounds == 8


@settings(max_examples=200, deadline=None)
@given(
    rounds=st.integers(min_value=0, max_value=60),
    failures=st.integers(min_value=1, max_value=20),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    base=st.floats(min_value=0.0, max_value=3600.0),
    extra=st.floats(min_value=0.0, max_value=86400.0),
)
def test_delay_is_jittered_between_half_and_all_of_the_capped_step(
    rounds: int, failures: int, jitter: float, base: float, extra: float
) -> None:
    cap = base + extra
    previous = CreationBackoff(failures=rounds, rounds=rounds)
    backoff = after_failures(previous, ["f"] * failures, NOW, base=base, cap=cap, rng=lambda: jitter)
    step = min(cap, base * 2.0**rounds)
    assert backoff.until is not None
    delay = (backoff.until - NOW).total_seconds()
    assert step / 2 - 1e-6 <= delay <= step + 1e-6
    assert delay <= cap + 1e-6
    assert backoff.failures == rounds + failures and backoff.rounds == rounds + 1
    assert backoff.active(NOW) == (delay > 0)


def test_zero_base_records_failures_but_never_waits() -> None:
    backoff = after_failures(CreationBackoff(), ["boom"], NOW, base=0.0, cap=0.0)
    assert backoff.failures == 1 and not backoff.active(NOW)


def test_fault_text_is_kept_as_plain_text() -> None:
    backoff = after_failures(
        CreationBackoff(), ["The resource could not be found.<br /><br />\n\n\n"], NOW, base=BASE, cap=CAP
    )
    assert backoff.last_fault == "The resource could not be found."


# --- what a listing counts ----------------------------------------------------------------------


def test_error_vms_at_boot_are_failures_and_start_the_backoff() -> None:
    backoff = observe(CreationBackoff(), [failed_view("a"), failed_view("b", QUOTA_VIA_ERROR)])
    assert backoff.failures == 2 and backoff.rounds == 1
    assert backoff.active(NOW)
    assert backoff.last_fault == QUOTA_VIA_ERROR and backoff.fault_kind == "quota"


def test_an_error_vm_counts_once_however_many_listings_show_it() -> None:
    first = observe(CreationBackoff(), [failed_view("a")])
    second = observe(first, [failed_view("a")])
    assert second == first
    third = observe(second, [failed_view("a"), failed_view("b")])
    assert third.failures == 2 and third.rounds == 2


def test_an_error_vm_without_fault_text_still_counts() -> None:
    backoff = observe(CreationBackoff(), [failed_view("a", fault=None)])
    assert backoff.failures == 1 and backoff.last_fault == NO_FAULT_TEXT


def test_an_error_vm_whose_runner_was_online_is_no_creation_failure() -> None:
    assert observe(CreationBackoff(), [failed_view("a")], was_online=lambda name: name == "a") == CreationBackoff()


def test_a_runner_that_comes_online_ends_the_streak() -> None:
    streak = CreationBackoff(failures=3, rounds=2, until=NOW + datetime.timedelta(minutes=5), last_fault="x")
    for view in (online_view("a"), online_view("b", busy=True)):
        assert observe(streak, [view]) == CreationBackoff()


def test_runners_that_were_online_before_do_not_end_the_streak() -> None:
    streak = CreationBackoff(failures=3, rounds=2, until=NOW + datetime.timedelta(minutes=5), last_fault="x")
    assert observe(streak, [online_view("old")], was_online=lambda name: True) == streak


def test_an_online_runner_on_a_vm_that_is_not_active_does_not_end_the_streak() -> None:
    streak = CreationBackoff(failures=1, rounds=1, until=NOW + datetime.timedelta(minutes=1), last_fault="x")
    assert observe(streak, [online_view("a", status="REBOOT")]) == streak


def test_a_success_in_the_same_listing_as_a_failure_wins() -> None:
    backoff = observe(CreationBackoff(), [failed_view("a"), online_view("b")])
    assert not backoff.active(NOW) and backoff.failures == 0
    # The failure was seen: a later listing does not count it again.
    assert observe(backoff, [failed_view("a")]) == backoff


# --- holding creations ----------------------------------------------------------------------------


PLAN = Plan("small", desired=3, alive=1, create=2, delete=(Deletion("x", DeleteReason.FAILED, "vm-x", 7),))


def test_while_backing_off_the_plan_deletes_but_creates_nothing() -> None:
    held = hold_creations(PLAN, CreationBackoff(failures=1, rounds=1, until=NOW + datetime.timedelta(seconds=1)), NOW)
    assert held == dataclasses.replace(PLAN, create=0, held=2)


def test_an_expired_or_no_backoff_leaves_the_plan() -> None:
    assert hold_creations(PLAN, CreationBackoff(), NOW) is PLAN
    assert hold_creations(PLAN, CreationBackoff(failures=4, rounds=2, until=NOW), NOW) is PLAN


# --- persistence ----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    failures=st.integers(min_value=0, max_value=10**6),
    rounds=st.integers(min_value=0, max_value=100),
    seconds=st.one_of(st.none(), st.integers(min_value=-(10**6), max_value=10**6)),
    fault=st.one_of(st.none(), st.text(max_size=50)),
    counted=st.lists(st.text(min_size=1, max_size=10), max_size=5),
)
def test_state_round_trip(
    failures: int, rounds: int, seconds: t.Optional[int], fault: t.Optional[str], counted: t.List[str]
) -> None:
    until = None if seconds is None else NOW + datetime.timedelta(seconds=seconds)
    backoff = CreationBackoff(failures, rounds, until, fault, tuple(counted))
    assert CreationBackoff.from_dict(backoff.to_dict()) == backoff


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.dictionaries(
            st.text(), st.one_of(st.none(), st.integers(), st.text(), st.booleans(), st.lists(st.integers()))
        ),
    )
)
def test_unreadable_state_means_no_backoff_and_never_raises(data: object) -> None:
    backoff = CreationBackoff.from_dict(data)
    assert backoff.failures >= 0 and backoff.rounds >= 0
