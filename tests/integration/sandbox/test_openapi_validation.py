"""Every response of the GitHub simulator, and every webhook, checked against GitHub's own schemas.

The schemas are GitHub's REST description (@octokit/openapi) and webhook schemas
(@octokit/webhooks-schemas), pinned and fetched with npm into a cache on first use.
"""

from __future__ import annotations

import typing as t
import uuid

import github
import pytest
from github import Auth, GithubIntegration

from tests.integration.sandbox.conftest_github import GithubWorld, unique, wait_for
from tests.sandbox.openapi import SchemaValidator, pinned_versions, to_json_schema

if t.TYPE_CHECKING:
    from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox

REPO = "octo-org/app"
ORG = "octo-org"
WEBHOOK_ACTIONS = {"queued", "waiting", "in_progress", "completed"}


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    return SchemaValidator.load()


@pytest.fixture()
def gw(sandbox: SandboxHandle) -> t.Iterator[GithubWorld]:
    world = GithubWorld(sandbox)
    yield world
    world.close()


def _expect(status: int, call: t.Callable[[], t.Any]) -> None:
    try:
        call()
    except github.GithubException as exc:
        assert exc.status == status, exc
        return
    assert status < 400, f"expected HTTP {status}"


def exercise(gw: GithubWorld) -> None:
    """Every route the simulator serves, with its success and its error answers."""
    gh = gw.github()
    req = gh.requester
    installation_id = int(gw.env["GITHUB_APP_INSTALLATION_ID"])
    app = GithubIntegration(auth=gw.app_auth(), base_url=gw.env["GITHUB_API_URL"])
    app_req = gw.github(auth=gw.app_auth()).requester

    # Accounts, App and meta.
    gh.get_rate_limit()
    gw.github(auth=None).get_rate_limit()
    app.get_app()
    list(app.get_installations())
    app.get_app_installation(installation_id)
    _expect(404, lambda: app_req.requestJsonAndCheck("GET", "/app/installations/1"))
    app.get_access_token(installation_id)
    _expect(404, lambda: app_req.requestJsonAndCheck("POST", "/app/installations/1/access_tokens"))
    app.get_repo_installation("octo-org", "app")
    app.get_org_installation(ORG)
    _expect(404, lambda: app.get_repo_installation("octo-org", "missing"))
    _expect(404, lambda: app.get_org_installation("missing-org"))
    gh.get_repo(REPO)
    _expect(404, lambda: gh.get_repo("octo-org/missing"))
    list(gh.get_organization(ORG).get_repos())
    _expect(404, lambda: gh.get_organization("missing-org"))
    _expect(401, lambda: gw.github(auth=Auth.Token("ghp_bad")).get_repo(REPO))
    _expect(401, lambda: req.requestJsonAndCheck("GET", "/app"))
    _expect(403, lambda: app_req.requestJsonAndCheck("GET", f"/repos/{REPO}"))

    # Runners, in both scopes.
    for scope in (f"/repos/{REPO}", f"/orgs/{ORG}"):
        label = unique("v")
        created = [gw.jit(scope, ["self-hosted", label], work_folder="_work") for _unused in range(3)]
        names = [c["runner"]["name"] for c in created]
        jit = f"{scope}/actions/runners/generate-jitconfig"

        def post_jit(body: dict[str, t.Any], path: str = jit) -> None:
            req.requestJsonAndCheck("POST", path, input=body)

        _expect(409, lambda n=names[0]: post_jit({"name": n, "runner_group_id": 1, "labels": ["a"]}))
        _expect(422, lambda: post_jit({"name": unique("x"), "runner_group_id": 1, "labels": []}))
        _expect(404, lambda: post_jit({"name": unique("y"), "runner_group_id": 77, "labels": ["a"]}))
        req.requestJsonAndCheck("GET", f"{scope}/actions/runners", parameters={"per_page": 1, "page": 2})
        req.requestJsonAndCheck("GET", f"{scope}/actions/runners", parameters={"name": names[0]})
        runner_id = created[0]["runner"]["id"]
        req.requestJsonAndCheck("GET", f"{scope}/actions/runners/{runner_id}")
        _expect(404, lambda s=scope: req.requestJsonAndCheck("GET", f"{s}/actions/runners/1"))
        req.requestJsonAndCheck("POST", f"{scope}/actions/runners/registration-token")
        req.requestJsonAndCheck("POST", f"{scope}/actions/runners/remove-token")
        # One runner online and busy: DELETE answers 422; then 204 and 404.
        gw.start_agent(created[1]["encoded_jit_config"], names[1])
        job_id = gw.enqueue(REPO, ["self-hosted", label], duration=2)["jobs"][0]["id"]
        wait_for(lambda j=job_id: gw.job(j)["status"] == "in_progress", what="job running")
        busy_id = created[1]["runner"]["id"]
        _expect(422, lambda s=scope, i=busy_id: req.requestJsonAndCheck("DELETE", f"{s}/actions/runners/{i}"))
        req.requestJsonAndCheck("DELETE", f"{scope}/actions/runners/{runner_id}")
        _expect(404, lambda s=scope, i=runner_id: req.requestJsonAndCheck("DELETE", f"{s}/actions/runners/{i}"))

    req.requestJsonAndCheck("GET", f"/orgs/{ORG}/actions/runner-groups")
    req.requestJsonAndCheck("GET", f"/orgs/{ORG}/actions/runner-groups/1")
    _expect(404, lambda: req.requestJsonAndCheck("GET", f"/orgs/{ORG}/actions/runner-groups/5"))

    # Runs and jobs, in every state (a waiting job too, for its webhook).
    repo = gh.get_repo(REPO)
    gw.enqueue(REPO, ["self-hosted", unique("nobody")], waiting=0.1)
    done_label = unique("done")
    done = gw.enqueue(REPO, ["self-hosted", done_label], duration=0.05)["jobs"][0]["id"]
    runner = gw.jit(f"/repos/{REPO}", ["self-hosted", done_label])
    gw.start_agent(runner["encoded_jit_config"], runner["runner"]["name"])
    wait_for(lambda: gw.job(done)["status"] == "completed", what="job completed")
    wait_for(lambda: any(j["status"] == "queued" for j in gw.control.get("/jobs")["jobs"]), what="a queued job")
    for status in ("queued", "in_progress", "completed", "success"):
        for run in repo.get_workflow_runs(status=status)[:2]:
            repo.get_workflow_run(run.id)
            for job in run.jobs():
                repo.get_workflow_job(job.id)
    _expect(404, lambda: repo.get_workflow_run(1))
    _expect(404, lambda: repo.get_workflow_job(1))

    # Rate limits: primary, secondary 403 and 429.
    gw.set_config(github__fault_reset_seconds=0.1)
    gw.add_fault(kind="github_rate_limit_primary", match={"route": "/repos/{owner}/{repo}"})
    _expect(403, lambda: gh.get_repo(REPO))
    for status in (403, 429):
        gw.add_fault(kind="github_rate_limit_secondary", status=status, match={"route": "/orgs/{org}"})
        _expect(status, lambda: gh.get_organization(ORG))
    gw.webhooks_idle()


def test_every_route_and_webhook_action_validates(gw: GithubWorld) -> None:
    exercise(gw)
    report = gw.control.get("/validation")
    assert report["enabled"] is True
    assert report["version"] == pinned_versions()[0]
    assert report["violations"] == []
    responses = {(v["method"], v["route"]) for v in report["validated"] if v["kind"] == "response"}
    served = {(r["method"], r["route"]) for r in report["routes"]}
    assert served - responses == set(), "routes without a validated response"
    actions = {v["route"] for v in report["validated"] if v["kind"] == "webhook"}
    assert actions >= WEBHOOK_ACTIONS
    statuses = {v["status"] for v in report["validated"] if v["kind"] == "response"}
    assert {200, 201, 204, 401, 403, 404, 409, 422, 429} <= statuses


def test_every_served_route_is_an_operation_of_the_description(gw: GithubWorld, validator: SchemaValidator) -> None:
    for route in gw.control.get("/validation")["routes"]:
        assert validator.has_operation(route["method"], route["route"]), route


# The validator itself --------------------------------------------------------------------------------
def test_nullable_becomes_json_schema() -> None:
    assert to_json_schema({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert to_json_schema({"type": "string", "enum": ["a"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
    }
    converted = to_json_schema({"nullable": True, "allOf": [{"$ref": "#/components/schemas/x"}], "description": "d"})
    assert converted == {"anyOf": [{"type": "null"}, {"allOf": [{"$ref": "#/definitions/x"}]}]}
    # A property named like an annotation keyword is kept.
    assert to_json_schema({"properties": {"description": {"type": "string"}}}) == {
        "properties": {"description": {"type": "string"}}
    }


def test_validator_reports_what_github_would_not_send(validator: SchemaValidator) -> None:
    route = "/repos/{owner}/{repo}/actions/runners/{runner_id}"
    good = {"id": 1, "name": "r", "os": "Linux", "status": "online", "busy": False, "labels": []}
    assert validator.validate_response("GET", route, 200, good) == []
    missing = validator.validate_response("GET", route, 200, {k: v for k, v in good.items() if k != "busy"})
    assert missing and "busy" in missing[0]
    assert validator.validate_response("GET", route, 200, {**good, "version": None}) == []  # nullable
    assert validator.validate_response("GET", route, 200, {**good, "id": "1"})
    assert validator.validate_response("GET", route, 201, good)  # not a documented status
    assert validator.validate_response("DELETE", route, 204, None) == []
    assert validator.validate_response("DELETE", route, 204, {"unexpected": True})
    assert validator.validate_response("GET", route, 404, {"message": "Not Found", "documentation_url": "x"}) == []
    assert validator.validate_response("GET", "/not/an/operation", 200, {})


def test_validator_checks_webhook_payloads(validator: SchemaValidator) -> None:
    assert validator.validate_webhook("workflow_job", "queued", {"action": "queued"})
    assert validator.validate_webhook("workflow_job", "nonsense", {})


def test_a_violation_is_recorded_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, with the simulator's own runner shape broken on purpose."""
    from tests.sandbox.github import GithubSim
    from tests.sandbox.httpserver import serve
    from tests.sandbox.world import World

    world = World()
    world.config["github.validate"] = True
    sim = GithubSim(world)
    server = serve(sim.service)
    try:
        real = sim.shapes.runner
        monkeypatch.setattr(sim.shapes, "runner", lambda r: {k: v for k, v in real(r).items() if k != "busy"})
        client = github.Github(base_url=sim.env()["GITHUB_API_URL"], auth=Auth.Token(sim.env()["GITHUB_TOKEN"]))
        client.requester.requestJsonAndCheck(
            "POST",
            f"/repos/{REPO}/actions/runners/generate-jitconfig",
            input={"name": f"broken-{uuid.uuid4().hex[:6]}", "runner_group_id": 1, "labels": ["a"]},
        )
        assert [(v["method"], v["route"], v["status"]) for v in sim.violations] == [
            ("POST", "/repos/{owner}/{repo}/actions/runners/generate-jitconfig", 201)
        ]
        assert "busy" in sim.violations[0]["errors"][0]
        assert world.events.query(type_="openapi_violation")
    finally:
        server.stop()
