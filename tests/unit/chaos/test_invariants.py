"""Each invariant check finds what it must find in simulator records, and names it with its trace."""

from __future__ import annotations

import typing as t

from tests.chaos import invariants

START = 1000.0


def ev(seq: int, type_: str, **fields: t.Any) -> t.Dict[str, t.Any]:
    return {"seq": seq, "time": START + seq, "type": type_, **fields}


def server(
    name: str, status: str = "ACTIVE", server_id: str = "", task_state: t.Optional[str] = None
) -> t.Dict[str, t.Any]:
    return {
        "id": server_id or name,
        "name": name,
        "status": status,
        "task_state": task_state,
        "created": "2026-01-01T00:00:00Z",
    }


def test_a_busy_deletion_is_found_with_the_runners_history() -> None:
    events = [
        ev(1, "server_create", id="s1", name="c-a-000000000001"),
        ev(2, "runner_online", id=7, name="c-a-000000000001"),
        ev(3, "server_create", id="s2", name="c-a-000000000002"),
        ev(4, "server_delete", id="s1", name="c-a-000000000001", status="ACTIVE", runner_busy=True),
        ev(5, "runner_delete", id=8, name="c-a-000000000002", busy_at_delete=False),
    ]
    found = invariants.busy_deletions(events, START)
    assert [v.message for v in found] == ["VM c-a-000000000001 deleted while its runner was busy"]
    assert [line.split()[3] for line in found[0].trace] == ["server_create", "runner_online", "server_delete"]


def test_a_busy_runner_deleted_on_github_is_found() -> None:
    found = invariants.busy_deletions(
        [ev(1, "runner_delete", id=8, name="c-b-000000000002", busy_at_delete=True)], START
    )
    assert len(found) == 1 and "GitHub" in found[0].message


def test_alive_runners_count_building_booting_and_busy_but_not_lost_exited_or_deleting() -> None:
    state = {
        "openstack": {
            "servers": [
                server("c-a-000000000001", "BUILD"),
                server("c-a-000000000002"),  # agent busy
                server("c-a-000000000003"),  # agent lost
                server("c-a-000000000004", task_state="deleting"),
                server("c-a-000000000005", "SHUTOFF"),
                server("c-a-000000000006"),  # never online, young
                server("other-vm"),
            ]
        },
        "github": {
            "agents": [
                {"server_id": "c-a-000000000002", "state": "busy"},
                {"server_id": "c-a-000000000003", "state": "lost"},
                {"server_id": "c-a-000000000006", "state": "never_online"},
            ]
        },
    }
    created = invariants._epoch("2026-01-01T00:00:00Z")
    assert created is not None
    young = invariants.alive_by_pool(state, "c", bootstrap_timeout=60, now=created + 10)
    assert sorted(young["a"]) == ["c-a-000000000001", "c-a-000000000002", "c-a-000000000006"]
    old = invariants.alive_by_pool(state, "c", bootstrap_timeout=60, now=created + 61)
    assert sorted(old["a"]) == ["c-a-000000000001", "c-a-000000000002"]
    over = invariants.over_max_runners(state, "c", {"a": 1}, 60, created + 61, [], START)
    assert [v.invariant for v in over] == [
        "alive runners <= max_runners"
    ] and "2 alive runners > max_runners 1" in over[0].message
    assert invariants.over_max_runners(state, "c", {"a": 2}, 60, created + 61, [], START) == []


def test_a_second_live_vm_of_a_jobs_runner_name_is_found_and_a_respawn_after_its_delete_is_not() -> None:
    name = "c-a-0000000000aa"
    events = [
        ev(1, "server_create", id="s1", name=name),
        ev(2, "server_create", id="s2", name=name),  # s1 still lives: a second runner for the job
        ev(3, "server_delete", id="s1", name=name, status="ACTIVE", runner_busy=False),
        ev(4, "server_delete", id="s1", name=name, cloud="sandbox", runner_busy=False),  # GitHub's view of it
        ev(5, "server_delete", id="s2", name=name, status="ERROR", runner_busy=False),
        ev(6, "server_create", id="s3", name=name),  # a retry once the others are gone
        ev(7, "server_create", id="s4", name="c-a-0000000000bb"),
    ]
    found = invariants.vms_of_one_name(events, START, {name: 42})
    assert [v.message for v in found] == [f"VM {name} (the runner of job 42) created while s1 of that name lives"]
    assert [line.split()[3] for line in found[0].trace][:3] == ["server_create", "server_create", "server_delete"]
    assert found[0].at == START + 2
    assert invariants.vms_of_one_name(events[2:], START, {}) == []


def test_a_job_on_two_runners_and_a_job_never_run_are_found() -> None:
    events = [
        ev(1, "job_queued", job_id=5),
        ev(2, "job_in_progress", job_id=5, runner_name="r1"),
        ev(3, "job_in_progress", job_id=5, runner_name="r2"),
        ev(4, "job_queued", job_id=6),
    ]
    assert [v.message for v in invariants.job_on_two_runners(events, START)] == ["job 5 ran on ['r1', 'r2']"]
    state = {
        "github": {
            "jobs": [{"id": 5, "labels": ["x"], "status": "completed"}, {"id": 6, "labels": ["x"], "status": "queued"}]
        }
    }
    missed = invariants.jobs_not_run(state, events, START)
    assert [v.message for v in missed] == ["job 6 (['x']) still queued"]
    assert len(missed[0].trace) == 1


def test_an_accepted_delivery_missing_from_the_queue_is_found() -> None:
    events = [
        ev(1, "webhook_delivered", guid="g1", job_id=5, action="queued", status_code=200),
        ev(2, "webhook_delivered", guid="g2", job_id=6, action="queued", status_code=200),
        ev(3, "webhook_delivered", guid="g3", job_id=6, action="completed", status_code=200),
        ev(4, "webhook_failed", guid="g4", job_id=7, action="queued", status_code=503),
    ]
    found = invariants.lost_deliveries(events, {5}, START)
    assert [v.message for v in found] == ["delivery g2 of job 6 was answered 200 but is not in the queue"]


def test_leftovers_name_each_kind_of_thing_left() -> None:
    state = {
        "openstack": {
            "servers": [server("c-a-000000000001"), server("c-a-000000000002", "DELETED"), server("foreign")],
            "keypairs": ["c-key", "theirs"],
        },
        "github": {"runners": [{"name": "c-b-000000000003"}, {"name": "someone-else"}]},
    }
    messages = [v.message for v in invariants.leftovers(state, "c", ["lock chaos/a"])]
    assert messages == [
        "1 VM(s) left: c-a-000000000001",
        "1 GitHub runner(s) left: c-b-000000000003",
        "1 key pair(s) left: c-key",
        "1 lease(s) left: lock chaos/a",
    ]
    clean = {"openstack": {"servers": [], "keypairs": []}, "github": {"runners": []}}
    assert invariants.leftovers(clean, "c", []) == []


def test_a_secret_in_any_output_is_found_with_what_precedes_it() -> None:
    texts = {"reconcile-0/run-1.err": "Traceback ...\nAuthorization: token ghp_secretvalue123\n", "ok.out": "{}"}
    found = invariants.secrets_exposed(texts, {"GitHub token": "ghp_secretvalue123", "short": "abc"})
    assert len(found) == 1 and "GitHub token in reconcile-0/run-1.err" in found[0].message
    assert invariants.secrets_exposed({"a": "nothing"}, {"GitHub token": "ghp_secretvalue123"}) == []


def test_sandbox_errors_are_violations() -> None:
    found = invariants.sandbox_errors([ev(1, "sandbox_error", where="tick", error="KeyError: x")], START)
    assert [v.message for v in found] == ["sandbox error in tick: KeyError: x"]


def test_a_failing_run_reports_its_seed_and_the_trace_of_each_violation() -> None:
    from tests.chaos.run import Result
    from tests.chaos.schedule import Knobs

    violation = invariants.Violation(
        "no busy runner deleted", "VM x deleted while its runner was busy", START + 5, ("t+ 4.00s #4 server_delete",)
    )
    result = Result(
        seed=42,
        knobs=Knobs(),
        steps=3,
        jobs=1,
        jobs_completed=1,
        faults={"hang": 1},
        fired={"hang": 1},
        kills={},
        process_runs={},
        reactive_spawns=0,
        activity_seconds=1.0,
        total_seconds=2.0,
        violations=[violation],
        applied=[f"{START + 1:.3f}|t+   1.00s fault hang", f"{START + 9:.3f}|t+   9.00s SIGKILL reconcile[0]"],
    )
    report = result.report()
    assert "seed 42" in report and "CHAOS_SEED=42" in report
    assert "VIOLATION [no busy runner deleted] VM x deleted while its runner was busy" in report
    assert "#4 server_delete" in report
    assert "run: t+   1.00s fault hang" in report
    assert "SIGKILL reconcile[0]" not in report  # after the violation: not part of its trace
    assert "fault kinds not injected:" in report


def test_a_respawn_beside_a_vm_its_runner_powered_off_is_no_second_runner() -> None:
    """The job's first runner took another job and powered its VM off: the job is owed a runner again."""
    name = "c-a-0000000000cc"
    events = [
        ev(1, "server_create", id="s1", name=name),
        ev(2, "server_power_off", id="s1", name=name),
        ev(3, "server_create", id="s2", name=name),
        ev(4, "server_create", id="s3", name=name),  # s2 still runs: this one is a second runner
    ]
    found = invariants.vms_of_one_name(events, START, {})
    assert [v.message for v in found] == [f"VM {name} created while s2 of that name lives"]
