"""The promises of the system, checked from the simulators' own records (events, state), never our logs.

Each check is a pure function of those records and returns `Violation`s, each with the
shortest trace that shows it: the simulator events about the one runner, VM, job or
delivery concerned, in order.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import re
import typing as t

Event = t.Mapping[str, t.Any]
ALIVE_AGENT_STATES = frozenset({"booting", "online", "busy"})


@dataclasses.dataclass(frozen=True)
class Violation:
    invariant: str
    message: str
    at: float  # sandbox time of the record that shows it
    trace: t.Tuple[str, ...] = ()


def event_line(event: Event, start: float = 0.0) -> str:
    fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("seq", "time", "type"))
    return f"t+{event['time'] - start:8.2f}s #{event['seq']} {event['type']} {fields}"


def trace(events: t.Sequence[Event], start: float, **match: t.Any) -> t.Tuple[str, ...]:
    """The events whose fields equal any of `match` (e.g. name=..., id=...), oldest first."""
    wanted = [(k, v) for k, v in match.items() if v is not None]
    return tuple(event_line(e, start) for e in events if any(e.get(k) == v for k, v in wanted))


def _related(events: t.Sequence[Event], start: float, name: t.Optional[str], ident: t.Any = None) -> t.Tuple[str, ...]:
    return tuple(
        event_line(e, start)
        for e in events
        if (name is not None and name in (e.get("name"), e.get("runner_name")))
        or (ident is not None and e.get("id") == ident)
    )


# --- continuous ------------------------------------------------------------------------


def busy_deletions(events: t.Sequence[Event], start: float) -> t.List[Violation]:
    """No busy runner deleted (no force is used in the runs): neither its VM nor its GitHub registration."""
    found = []
    for e in events:
        if e["type"] == "server_delete" and e.get("runner_busy"):
            what = f"VM {e['name']} deleted while its runner was busy"
        elif e["type"] == "runner_delete" and e.get("busy_at_delete"):
            what = f"runner {e['name']} deleted from GitHub while busy"
        else:
            continue
        found.append(Violation("no busy runner deleted", what, e["time"], _related(events, start, e.get("name"))))
    return found


def alive_by_pool(
    state: t.Mapping[str, t.Any], controller_id: str, bootstrap_timeout: float, now: float
) -> t.Dict[str, t.List[str]]:
    """Per pool, the VMs whose runner is alive as GitHub and Nova see it: building, booting, online or busy.

    A VM whose runner never came online counts until `bootstrap_timeout`; lost, exited and
    deleting ones do not (the planner replaces them; they hold no job).
    """
    agents = {a["server_id"]: a for a in state["github"]["agents"] if a.get("server_id")}
    name_re = re.compile(rf"^{re.escape(controller_id)}-(.+)-[0-9a-f]{{12}}$")
    alive: t.Dict[str, t.List[str]] = collections.defaultdict(list)
    for server in state["openstack"]["servers"]:
        found = name_re.match(server["name"])
        if found is None or server["status"] not in ("BUILD", "ACTIVE") or server.get("task_state") == "deleting":
            continue
        agent = agents.get(server["id"])
        if agent is not None and agent["state"] not in ALIVE_AGENT_STATES:
            created = _epoch(server.get("created"))
            if agent["state"] != "never_online" or created is None or now - created >= bootstrap_timeout:
                continue
        alive[found.group(1)].append(server["name"])
    return dict(alive)


def over_max_runners(
    state: t.Mapping[str, t.Any],
    controller_id: str,
    max_runners: t.Mapping[str, int],
    bootstrap_timeout: float,
    now: float,
    events: t.Sequence[Event],
    start: float,
) -> t.List[Violation]:
    found = []
    for pool, names in sorted(alive_by_pool(state, controller_id, bootstrap_timeout, now).items()):
        limit = max_runners.get(pool)
        if limit is not None and len(names) > limit:
            lines = tuple(line for name in names for line in _related(events, start, name))
            message = f"pool {pool}: {len(names)} alive runners > max_runners {limit}: {', '.join(sorted(names))}"
            found.append(Violation("alive runners <= max_runners", message, now, lines))
    return found


def job_on_two_runners(events: t.Sequence[Event], start: float) -> t.List[Violation]:
    runners: t.Dict[int, t.Set[str]] = collections.defaultdict(set)
    for e in events:
        if e["type"] == "job_in_progress":
            runners[e["job_id"]].add(e["runner_name"])
    return [
        Violation("one runner per job", f"job {job} ran on {sorted(names)}", 0.0, trace(events, start, job_id=job))
        for job, names in sorted(runners.items())
        if len(names) > 1
    ]


def vms_of_one_name(events: t.Sequence[Event], start: float, jobs_by_name: t.Mapping[str, int]) -> t.List[Violation]:
    """Never two live VMs of one name: a job's runner name is derived from its id, so two would be two runners for it.

    A VM lives from its `server_create` until its runner powered it off (`server_power_off`,
    after its job), it failed (`server_error`) or it was deleted (`server_delete`): a VM in any
    of those can run no runner. A job whose runner took another job is owed a runner again,
    and its retry may make a new VM of the same name beside the old one powered off.
    `jobs_by_name` maps a job's runner names to its id, for the message.
    """
    names: t.Dict[str, str] = {}
    live: t.Dict[str, t.Set[str]] = collections.defaultdict(set)
    found = []
    for e in events:
        if e["type"] == "server_create":
            name, ident = str(e["name"]), str(e["id"])
            if live[name]:
                job = jobs_by_name.get(name)
                whose = f" (the runner of job {job})" if job is not None else ""
                message = f"VM {name}{whose} created while {sorted(live[name])[0]} of that name lives"
                found.append(Violation("one spawned runner per job", message, e["time"], _related(events, start, name)))
            names[ident] = name
            live[name].add(ident)
        elif e["type"] in ("server_delete", "server_power_off", "server_error"):
            name_of = names.pop(str(e["id"]), None)
            if name_of is not None:
                live[name_of].discard(str(e["id"]))
    return found


def sandbox_errors(events: t.Sequence[Event], start: float) -> t.List[Violation]:
    return [
        Violation(
            "simulators consistent",
            f"sandbox error in {e.get('where')}: {e.get('error')}",
            e["time"],
            (event_line(e, start),),
        )
        for e in events
        if e["type"] in ("sandbox_error", "openapi_violation")
    ]


# --- at the end ------------------------------------------------------------------------


def jobs_not_run(state: t.Mapping[str, t.Any], events: t.Sequence[Event], start: float) -> t.List[Violation]:
    """Every job eventually ran (was taken by a runner; it may then have failed with its runner)."""
    return [
        Violation(
            "every job runs",
            f"job {job['id']} ({job['labels']}) still {job['status']}",
            0.0,
            trace(events, start, job_id=job["id"]),
        )
        for job in state["github"]["jobs"]
        if job["status"] not in ("in_progress", "completed")
    ]


def lost_deliveries(events: t.Sequence[Event], stored_job_ids: t.AbstractSet[int], start: float) -> t.List[Violation]:
    """Every `queued` delivery the router accepted (2xx) is in the queue: the router loses no job it acknowledged."""
    found = []
    for e in events:
        if e["type"] == "webhook_delivered" and e.get("action") == "queued" and e.get("job_id") not in stored_job_ids:
            message = (
                f"delivery {e['guid']} of job {e['job_id']} was answered {e['status_code']} but is not in the queue"
            )
            found.append(
                Violation("accepted deliveries stored", message, e["time"], trace(events, start, job_id=e["job_id"]))
            )
    return found


def leftovers(
    state: t.Mapping[str, t.Any],
    controller_id: str,
    live_leases: t.Sequence[str],
) -> t.List[Violation]:
    """After the quiet end and the final reconciles: no VM, GitHub runner, key pair or lease of ours."""
    prefix = f"{controller_id}-"
    found = []
    servers = [
        s["name"] for s in state["openstack"]["servers"] if s["status"] != "DELETED" and s["name"].startswith(prefix)
    ]
    runners = [r["name"] for r in state["github"]["runners"] if r["name"].startswith(prefix)]
    keypairs = [k for k in state["openstack"].get("keypairs", []) if str(k).startswith(prefix)]
    for what, names in (("VM", servers), ("GitHub runner", runners), ("key pair", keypairs), ("lease", live_leases)):
        if names:
            found.append(
                Violation("nothing left behind", f"{len(names)} {what}(s) left: {', '.join(sorted(names)[:10])}", 0.0)
            )
    return found


def secrets_exposed(texts: t.Mapping[str, str], secrets: t.Mapping[str, str]) -> t.List[Violation]:
    """No secret value in any log, result or exception (`texts`: file name -> content)."""
    found = []
    for label, value in secrets.items():
        if len(value) < 8:
            continue  # too short to tell from other text
        for name, text in texts.items():
            if value in text:
                at = text.index(value)
                context = text[max(0, at - 60) : at].replace("\n", " ")
                found.append(Violation("no secret exposed", f"{label} in {name} after {context!r}", 0.0))
    return found


def _epoch(value: t.Any) -> t.Optional[float]:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()
