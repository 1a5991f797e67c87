"""The GitHub simulator through PyGithub: auth, runners, JIT configs, jobs, rate limits, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import typing as t

import github
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, GithubIntegration

from tests.integration.sandbox.conftest_github import GithubWorld, unique, wait_for

if t.TYPE_CHECKING:
    from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.sandbox

REPO = "octo-org/app"
OTHER_REPO = "octo-org/infra"
ORG = "octo-org"
REPO_SCOPE = f"/repos/{REPO}"
ORG_SCOPE = f"/orgs/{ORG}"


@pytest.fixture()
def gw(sandbox: SandboxHandle) -> t.Iterator[GithubWorld]:
    world = GithubWorld(sandbox)
    yield world
    world.close()
    assert sandbox.control.get("/validation")["violations"] == []


@pytest.fixture()
def gh(gw: GithubWorld) -> github.Github:
    return gw.github()


# Auth ------------------------------------------------------------------------------------------
def test_token_auth_reads_repository_and_organization(gh: github.Github, gw: GithubWorld) -> None:
    repo = gh.get_repo(REPO)
    org = gh.get_organization(ORG)
    assert repo.full_name == REPO
    assert repo.url == f"{gw.env['GITHUB_API_URL']}/repos/{REPO}"
    assert org.login == ORG
    assert {r.full_name for r in org.get_repos()} >= {REPO, OTHER_REPO}


def test_bad_token_is_401_bad_credentials(gw: GithubWorld) -> None:
    with pytest.raises(github.BadCredentialsException) as err:
        gw.github(auth=Auth.Token("ghp_not-a-real-token")).get_repo(REPO)
    assert err.value.status == 401
    assert err.value.data["message"] == "Bad credentials"


def test_unknown_repository_is_404(gh: github.Github) -> None:
    with pytest.raises(github.UnknownObjectException):
        gh.get_repo("octo-org/nope")


def test_the_api_lives_under_api_v3_only(gw: GithubWorld) -> None:
    root = gw.env["GITHUB_API_URL"].removesuffix("/api/v3")
    with pytest.raises(github.UnknownObjectException):
        gw.github(base_url=root).get_repo(REPO)


def test_github_app_jwt_and_installation_token(gw: GithubWorld) -> None:
    app_auth = gw.app_auth()
    integration = GithubIntegration(auth=app_auth, base_url=gw.env["GITHUB_API_URL"])
    installation_id = int(gw.env["GITHUB_APP_INSTALLATION_ID"])
    assert integration.get_app().id == int(gw.env["GITHUB_APP_ID"])
    assert [i.id for i in integration.get_installations()] == [installation_id]
    assert integration.get_repo_installation("octo-org", "app").id == installation_id
    assert integration.get_org_installation(ORG).id == installation_id
    token = integration.get_access_token(installation_id)
    assert token.token.startswith("ghs_")
    assert token.expires_at.timestamp() > time.time()
    # An installation client fetches its token itself, then works like a token client.
    installed = gw.github(auth=app_auth.get_installation_auth(installation_id))
    assert installed.get_repo(REPO).full_name == REPO


def test_jwt_signed_with_another_key_is_refused(gw: GithubWorld) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    auth = Auth.AppAuth(int(gw.env["GITHUB_APP_ID"]), pem)
    with pytest.raises(github.GithubException) as err:
        GithubIntegration(auth=auth, base_url=gw.env["GITHUB_API_URL"]).get_app()
    assert err.value.status == 401


def test_jwt_living_longer_than_ten_minutes_is_refused(gw: GithubWorld) -> None:
    now = int(time.time())
    key = open(gw.env["GITHUB_APP_PRIVATE_KEY_FILE"]).read()  # noqa: SIM115 - read once
    token = jwt.encode({"iat": now - 30, "exp": now + 900, "iss": gw.env["GITHUB_APP_ID"]}, key, algorithm="RS256")
    with pytest.raises(github.GithubException) as err:
        gw.github(auth=Auth.AppAuthToken(token)).requester.requestJsonAndCheck("GET", "/app")
    assert err.value.status == 401
    assert "too far in the future" in err.value.data["message"]


def test_expired_installation_token_is_bad_credentials(gw: GithubWorld) -> None:
    integration = GithubIntegration(auth=gw.app_auth(), base_url=gw.env["GITHUB_API_URL"])
    gw.set_config(github__installation_token_ttl=0.2)
    token = integration.get_access_token(int(gw.env["GITHUB_APP_INSTALLATION_ID"])).token
    time.sleep(0.3)
    with pytest.raises(github.BadCredentialsException):
        gw.github(auth=Auth.Token(token)).get_repo(REPO)


def test_token_cannot_call_app_routes_and_jwt_cannot_manage_runners(gw: GithubWorld, gh: github.Github) -> None:
    with pytest.raises(github.GithubException) as err:
        gh.requester.requestJsonAndCheck("GET", "/app")
    assert err.value.status == 401
    with pytest.raises(github.GithubException) as err:
        gw.github(auth=gw.app_auth()).requester.requestJsonAndCheck("GET", f"{REPO_SCOPE}/actions/runners")
    assert err.value.status == 403


# JIT configs and runners -------------------------------------------------------------------------
def test_repo_jit_config_registers_an_offline_runner(gw: GithubWorld, gh: github.Github) -> None:
    name = unique("jit")
    data = gw.jit(REPO_SCOPE, ["self-hosted", "Linux", "gpu"], name)
    runner = data["runner"]
    assert runner["name"] == name
    assert (runner["status"], runner["busy"], runner["ephemeral"]) == ("offline", False, True)
    assert [label["name"] for label in runner["labels"]] == ["self-hosted", "Linux", "gpu"]
    assert {label["type"] for label in runner["labels"]} == {"read-only", "custom"}
    # Laid out like GitHub's: base64 JSON of the runner's three files, each base64 again.
    files = json.loads(base64.b64decode(data["encoded_jit_config"]))
    assert set(files) == {".runner", ".credentials", ".credentials_rsaparams"}
    dot_runner = json.loads(base64.b64decode(files[".runner"]))
    assert (dot_runner["AgentId"], dot_runner["AgentName"]) == (runner["id"], name)
    assert dot_runner["GitHubUrl"].endswith(f"/{REPO}")
    assert gh.get_repo(REPO).get_self_hosted_runner(runner["id"]).name == name
    assert gw.events("runner_register", id=runner["id"])


def test_org_jit_config_through_pygithub(gw: GithubWorld, gh: github.Github) -> None:
    name = unique("org")
    org = gh.get_organization(ORG)
    config = org.create_self_hosted_runner_jitconfig(name, 1, ["self-hosted", "org-label"])
    gw.forget(ORG_SCOPE, config.runner.id)
    assert config.encoded_jit_config
    assert [r.name for r in org.get_self_hosted_runners(name=name)] == [name]


def test_duplicate_runner_name_is_409(gw: GithubWorld) -> None:
    name = unique("dup")
    gw.jit(REPO_SCOPE, ["self-hosted"], name)
    with pytest.raises(github.GithubException) as err:
        gw.jit(REPO_SCOPE, ["self-hosted"], name)
    assert err.value.status == 409
    assert err.value.data["message"] == f"Already exists - A runner with the name {name} already exists."
    gw.jit(f"/repos/{OTHER_REPO}", ["self-hosted"], name)  # another scope, another runner


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"labels": []}, 422),
        ({"labels": [f"l{i}" for i in range(101)]}, 422),
        ({"labels": ["ok", ""]}, 422),
        ({"labels": "self-hosted"}, 422),
        ({"runner_group_id": None}, 422),
        ({"runner_group_id": 99}, 404),
    ],
)
def test_jit_config_request_validation(gh: github.Github, body: dict[str, t.Any], status: int) -> None:
    request = {"name": unique("bad"), "runner_group_id": 1, "labels": ["self-hosted"], **body}
    with pytest.raises(github.GithubException) as err:
        gh.requester.requestJsonAndCheck("POST", f"{REPO_SCOPE}/actions/runners/generate-jitconfig", input=request)
    assert err.value.status == status


def test_jit_config_without_runner_group_is_422(gh: github.Github) -> None:
    with pytest.raises(github.GithubException) as err:
        gh.requester.requestJsonAndCheck(
            "POST", f"{REPO_SCOPE}/actions/runners/generate-jitconfig", input={"name": unique("x"), "labels": ["a"]}
        )
    assert err.value.status == 422
    assert "runner_group_id" in err.value.data["message"]


def test_listing_pages_of_100_with_link_headers(gw: GithubWorld, gh: github.Github) -> None:
    scope = f"/repos/{OTHER_REPO}"
    before = gh.get_repo(OTHER_REPO).get_self_hosted_runners().totalCount
    names = {gw.jit(scope, ["self-hosted", "paging"])["runner"]["name"] for _unused in range(230)}
    total = before + len(names)
    calls = gw.calls("GET", "/repos/{owner}/{repo}/actions/runners")
    listed = list(gw.github(per_page=100).get_repo(OTHER_REPO).get_self_hosted_runners())
    assert names <= {r.name for r in listed}
    assert len(listed) == total
    assert gw.calls("GET", "/repos/{owner}/{repo}/actions/runners") - calls == -(-total // 100)
    headers, data = gh.requester.requestJsonAndCheck(
        "GET", f"{scope}/actions/runners", parameters={"per_page": 100, "page": 2}
    )
    assert data["total_count"] == total
    assert 'rel="prev"' in headers["link"]
    assert 'rel="first"' in headers["link"]
    _unused, data = gh.requester.requestJsonAndCheck("GET", f"{scope}/actions/runners", parameters={"per_page": 500})
    assert len(data["runners"]) == 100  # per_page is capped at 100


def test_list_filter_by_name(gw: GithubWorld, gh: github.Github) -> None:
    name = gw.jit(REPO_SCOPE, ["self-hosted"])["runner"]["name"]
    _unused, data = gh.requester.requestJsonAndCheck("GET", f"{REPO_SCOPE}/actions/runners", parameters={"name": name})
    assert data["total_count"] == 1
    assert data["runners"][0]["name"] == name


def test_delete_runner_204_then_404(gw: GithubWorld, gh: github.Github) -> None:
    runner = gw.jit(REPO_SCOPE, ["self-hosted"])["runner"]
    repo = gh.get_repo(REPO)
    assert repo.remove_self_hosted_runner(runner["id"]) is True
    with pytest.raises(github.UnknownObjectException):
        repo.get_self_hosted_runner(runner["id"])
    assert repo.remove_self_hosted_runner(runner["id"]) is False  # 404
    deletes = gw.events("runner_delete", id=runner["id"])
    assert [(e["reason"], e["busy_at_delete"]) for e in deletes] == [("api", False)]


def test_registration_and_remove_tokens(gh: github.Github) -> None:
    org = gh.get_organization(ORG)
    for token in (org.create_self_hosted_runner_registration_token(), org.create_self_hosted_runner_remove_token()):
        assert token.token
        assert token.expires_at.timestamp() > time.time()
    _unused, data = gh.requester.requestJsonAndCheck("POST", f"{REPO_SCOPE}/actions/runners/registration-token")
    assert data["token"]
    assert data["expires_at"]


def test_runner_groups(gh: github.Github) -> None:
    _unused, data = gh.requester.requestJsonAndCheck("GET", f"{ORG_SCOPE}/actions/runner-groups")
    assert data["total_count"] == len(data["runner_groups"]) >= 1
    default = [g for g in data["runner_groups"] if g["default"]]
    assert [(g["id"], g["name"]) for g in default] == [(1, "Default")]
    _unused, group = gh.requester.requestJsonAndCheck("GET", f"{ORG_SCOPE}/actions/runner-groups/1")
    assert group["name"] == "Default"
    with pytest.raises(github.UnknownObjectException):
        gh.requester.requestJsonAndCheck("GET", f"{ORG_SCOPE}/actions/runner-groups/42")


def test_org_runners_join_any_org_group_repo_runners_only_the_default(gw: GithubWorld, gh: github.Github) -> None:
    _unused, data = gh.requester.requestJsonAndCheck("GET", f"{ORG_SCOPE}/actions/runner-groups")
    other = next(g["id"] for g in data["runner_groups"] if not g["default"])
    runner = gw.jit(ORG_SCOPE, ["self-hosted"], runner_group_id=other)["runner"]
    assert runner["runner_group_id"] == other
    with pytest.raises(github.GithubException) as err:
        gw.jit(REPO_SCOPE, ["self-hosted"], runner_group_id=other)
    assert err.value.status == 404


# Runner processes and jobs ----------------------------------------------------------------------------
def test_job_lifecycle_on_an_ephemeral_runner(gw: GithubWorld, gh: github.Github) -> None:
    label = unique("life")
    data = gw.jit(REPO_SCOPE, ["self-hosted", label])
    runner_id, name = data["runner"]["id"], data["runner"]["name"]
    gw.start_agent(data["encoded_jit_config"], name)
    gw.wait_online(REPO_SCOPE, runner_id)
    job = gw.enqueue(REPO, ["self-hosted", label.upper()], duration=0.3)["jobs"][0]  # labels match in any case
    repo = gh.get_repo(REPO)
    wait_for(lambda: repo.get_workflow_job(job["id"]).status == "in_progress", what="job in progress")
    running = repo.get_workflow_job(job["id"])
    assert (running.runner_name, running.runner_id) == (name, runner_id)
    assert repo.get_self_hosted_runner(runner_id).busy is True
    # A busy runner cannot be deleted.
    with pytest.raises(github.GithubException) as err:
        gh.requester.requestJsonAndCheck("DELETE", f"{REPO_SCOPE}/actions/runners/{runner_id}")
    assert err.value.status == 422
    assert err.value.data["message"] == f'Bad request - Runner "{name}" is still running a job"'
    assert gw.events("runner_delete_refused", id=runner_id)
    wait_for(lambda: repo.get_workflow_job(job["id"]).status == "completed", what="job completed")
    assert repo.get_workflow_job(job["id"]).conclusion == "success"
    # Ephemeral: GitHub removes the runner once its job is done.
    with pytest.raises(github.UnknownObjectException):
        repo.get_self_hosted_runner(runner_id)
    deleted = gw.events("runner_delete", id=runner_id)
    assert [(e["reason"], e["busy_at_delete"]) for e in deleted] == [("ephemeral", False)]
    transitions = [e["type"] for e in gw.sandbox.events() if e.get("job_id") == job["id"] and e["type"][:4] == "job_"]
    assert transitions == ["job_queued", "job_in_progress", "job_completed"]


def test_unmatched_job_stays_queued_and_is_listed_as_queued_run(gw: GithubWorld, gh: github.Github) -> None:
    label = unique("nomatch")
    data = gw.jit(f"/repos/{OTHER_REPO}", ["self-hosted", unique("other")])
    gw.start_agent(data["encoded_jit_config"], data["runner"]["name"])
    gw.wait_online(f"/repos/{OTHER_REPO}", data["runner"]["id"])
    created = gw.enqueue(OTHER_REPO, ["self-hosted", label], count=2)
    time.sleep(0.2)
    repo = gh.get_repo(OTHER_REPO)
    queued = {r.id: r for r in repo.get_workflow_runs(status="queued")}
    assert created["run_id"] in queued
    jobs = list(queued[created["run_id"]].jobs())
    assert [j.status for j in jobs] == ["queued", "queued"]
    assert [j.labels for j in jobs] == [["self-hosted", label]] * 2
    assert repo.get_self_hosted_runner(data["runner"]["id"]).busy is False


def test_org_runner_serves_repo_jobs_and_repo_runners_go_first(gw: GithubWorld, gh: github.Github) -> None:
    label = unique("route")
    org = gh.get_organization(ORG)
    org_config = org.create_self_hosted_runner_jitconfig(unique("orgr"), 1, ["self-hosted", label])
    org_runner = org_config.runner
    gw.forget(ORG_SCOPE, org_runner.id)
    repo_data = gw.jit(f"/repos/{OTHER_REPO}", ["self-hosted", label])
    repo_name = repo_data["runner"]["name"]
    gw.start_agent(org_config.encoded_jit_config, org_runner.name)
    gw.start_agent(repo_data["encoded_jit_config"], repo_name)
    gw.wait_online(f"/repos/{OTHER_REPO}", repo_data["runner"]["id"])
    gw.wait_online(ORG_SCOPE, org_runner.id)
    infra_job = gw.enqueue(OTHER_REPO, ["self-hosted", label], duration=0.3)["jobs"][0]
    wait_for(lambda: gw.job(infra_job["id"])["status"] != "queued", what="infra job started")
    assert gw.job(infra_job["id"])["runner_name"] == repo_name
    app_job = gw.enqueue(REPO, ["self-hosted", label], duration=0.1)["jobs"][0]
    wait_for(lambda: gw.job(app_job["id"])["status"] != "queued", what="app job started")
    assert gw.job(app_job["id"])["runner_name"] == org_runner.name


def test_waiting_job_queues_after_its_wait(gw: GithubWorld) -> None:
    job = gw.enqueue(OTHER_REPO, ["self-hosted", unique("wait")], waiting=0.2)["jobs"][0]
    assert job["status"] == "waiting"
    wait_for(lambda: gw.job(job["id"])["status"] == "queued", what="job queued after waiting")


# JIT config presented by a runner --------------------------------------------------------------------
def _rejections(gw: GithubWorld, name: str) -> list[str]:
    return [e["reason"] for e in gw.events("runner_jit_rejected", name=name)]


def _with_runner_file(encoded: str, **changes: t.Any) -> str:
    files = json.loads(base64.b64decode(encoded))
    runner_file = {**json.loads(base64.b64decode(files[".runner"])), **changes}
    files[".runner"] = base64.b64encode(json.dumps(runner_file).encode()).decode()
    return base64.b64encode(json.dumps(files).encode()).decode()


def test_jit_config_is_single_use(gw: GithubWorld) -> None:
    data = gw.jit(REPO_SCOPE, ["self-hosted", unique("once")])
    name = data["runner"]["name"]
    gw.start_agent(data["encoded_jit_config"], name)
    gw.wait_online(REPO_SCOPE, data["runner"]["id"])
    gw.start_agent(data["encoded_jit_config"], name)
    assert wait_for(lambda: _rejections(gw, name), what="second use rejected") == ["already_used"]


def test_jit_config_of_a_deleted_runner_never_comes_online(gw: GithubWorld, gh: github.Github) -> None:
    data = gw.jit(REPO_SCOPE, ["self-hosted"])
    gh.get_repo(REPO).remove_self_hosted_runner(data["runner"]["id"])
    gw.start_agent(data["encoded_jit_config"], data["runner"]["name"])
    assert wait_for(lambda: _rejections(gw, data["runner"]["name"]), what="rejection") == ["runner_deleted"]


def test_garbage_and_tampered_jit_configs_are_rejected(gw: GithubWorld, gh: github.Github) -> None:
    garbage = unique("garbage")
    gw.start_agent("bm90IGEgY29uZmln", garbage)
    assert wait_for(lambda: _rejections(gw, garbage), what="rejection") == ["malformed"]
    data = gw.jit(REPO_SCOPE, ["self-hosted"])
    name, encoded = data["runner"]["name"], data["encoded_jit_config"]
    github_url = json.loads(base64.b64decode(json.loads(base64.b64decode(encoded))[".runner"]))["GitHubUrl"]
    victim = gw.jit(REPO_SCOPE, ["self-hosted"])["runner"]["id"]
    cases = {
        "wrong_scope": _with_runner_file(encoded, GitHubUrl="https://github.com/elsewhere/app"),
        # The same runner id, claimed in another repository: no such runner there.
        "runner_deleted": _with_runner_file(encoded, GitHubUrl=github_url.replace(f"/{REPO}", f"/{OTHER_REPO}")),
        # Another runner's id with this config's credentials.
        "invalid_credentials": _with_runner_file(encoded, AgentId=victim),
    }
    for reason, config in cases.items():
        gw.start_agent(config, f"{name}-{reason}")
        assert wait_for(lambda r=reason: _rejections(gw, f"{name}-{r}"), what=reason) == [reason]
    assert gh.get_repo(REPO).get_self_hosted_runner(data["runner"]["id"]).status == "offline"


# Rate limits ----------------------------------------------------------------------------------------------
def test_rate_limit_headers_and_rate_limit_endpoint(gh: github.Github) -> None:
    headers, _unused = gh.requester.requestJsonAndCheck("GET", REPO_SCOPE)
    assert headers["x-ratelimit-limit"] == "5000"
    assert headers["x-ratelimit-resource"] == "core"
    used = int(headers["x-ratelimit-used"])
    assert int(headers["x-ratelimit-remaining"]) == 5000 - used
    assert int(headers["x-ratelimit-reset"]) > time.time()
    first, second = gh.get_rate_limit().resources.core, gh.get_rate_limit().resources.core
    assert first.remaining == second.remaining == 5000 - used  # GET /rate_limit does not count


def test_primary_rate_limit_exhausted(gw: GithubWorld) -> None:
    client = gw.github(auth=gw.app_auth().get_installation_auth(int(gw.env["GITHUB_APP_INSTALLATION_ID"])))
    used = client.get_rate_limit().resources.core.used  # also fetches the installation token
    gw.set_config(github__rate_limit=used + 2)
    with pytest.raises(github.RateLimitExceededException) as err:
        for _unused in range(5):
            client.get_repo(REPO)
    assert err.value.status == 403
    assert err.value.headers["x-ratelimit-remaining"] == "0"
    assert err.value.data["message"].startswith("API rate limit exceeded for installation ID")
    assert client.get_rate_limit().resources.core.remaining == 0


def test_injected_primary_rate_limit_resets_soon(gw: GithubWorld, gh: github.Github) -> None:
    gw.set_config(github__fault_reset_seconds=0.5)
    gw.add_fault(kind="github_rate_limit_primary", match={"route": "/repos/{owner}/{repo}"})
    with pytest.raises(github.RateLimitExceededException) as err:
        gh.get_repo(REPO)
    reset = int(err.value.headers["x-ratelimit-reset"])
    assert reset <= time.time() + 2
    time.sleep(max(0.0, reset - time.time()) + 0.1)
    assert gh.get_repo(REPO).full_name == REPO  # a fresh budget after the reset


@pytest.mark.parametrize("status", [403, 429])
def test_injected_secondary_rate_limit_has_retry_after(gw: GithubWorld, gh: github.Github, status: int) -> None:
    gw.add_fault(
        kind="github_rate_limit_secondary", status=status, headers={"Retry-After": "1"}, match={"method": "GET"}
    )
    with pytest.raises(github.GithubException) as err:
        gh.get_repo(REPO)
    assert err.value.status == status
    assert err.value.headers["retry-after"] == "1"
    assert "secondary rate limit" in err.value.data["message"]


def test_pygithub_retries_a_secondary_limit_after_retry_after(gw: GithubWorld) -> None:
    gw.add_fault(kind="github_rate_limit_secondary", headers={"Retry-After": "1"}, match={"route": "/orgs/{org}"})
    calls = gw.calls("GET", "/orgs/{org}")
    client = gw.github(retry=github.GithubRetry(total=2))
    assert client.get_organization(ORG).login == ORG
    assert gw.calls("GET", "/orgs/{org}") - calls == 2


# Webhooks ---------------------------------------------------------------------------------------------------
class Receiver:
    """A webhook endpoint answering `status`, keeping what it got."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: t.Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def for_job(self, job_id: int) -> list[tuple[dict[str, str], dict[str, t.Any]]]:
        found = [(h, json.loads(b)) for h, b in list(self.requests)]
        return [(h, p) for h, p in found if p["workflow_job"]["id"] == job_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> t.Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_workflow_job_webhooks_are_signed_and_unique(gw: GithubWorld, receiver: Receiver) -> None:
    secret = "s3cret"
    gw.subscribe(receiver.url, secret=secret)
    label = unique("hook")
    data = gw.jit(REPO_SCOPE, ["self-hosted", label])
    name = data["runner"]["name"]
    gw.start_agent(data["encoded_jit_config"], name)
    job = gw.enqueue(REPO, ["self-hosted", label], duration=0.1)["jobs"][0]
    got = wait_for(lambda: len(receiver.for_job(job["id"])) == 3 and receiver.for_job(job["id"]), what="3 hooks")
    assert [p["action"] for _unused, p in got] == ["queued", "in_progress", "completed"]
    assert got[2][1]["workflow_job"]["conclusion"] == "success"
    assert got[1][1]["workflow_job"]["runner_name"] == name
    assert got[0][1]["repository"]["full_name"] == REPO
    assert len({h["x-github-delivery"] for h, _unused in got}) == 3
    assert {h["x-github-event"] for h, _unused in got} == {"workflow_job"}
    for headers, body in receiver.requests:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-hub-signature-256"], expected)


def test_default_secret_is_the_sandbox_secret(gw: GithubWorld, receiver: Receiver) -> None:
    gw.subscribe(receiver.url)
    job = gw.enqueue(OTHER_REPO, ["self-hosted", unique("secret")])["jobs"][0]
    headers, _unused = wait_for(lambda: receiver.for_job(job["id"]), what="a delivery")[0]
    body = receiver.requests[-1][1]
    secret = gw.env["GITHUB_WEBHOOK_SECRET"].encode()
    assert headers["x-hub-signature-256"] == "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_failed_delivery_is_recorded_not_retried_and_can_be_redelivered(gw: GithubWorld, receiver: Receiver) -> None:
    receiver.status = 500
    gw.subscribe(receiver.url)
    job = gw.enqueue(OTHER_REPO, ["self-hosted", unique("fail")])["jobs"][0]
    wait_for(lambda: receiver.for_job(job["id"]), what="one delivery")
    gw.webhooks_idle()
    failed = [d for d in gw.control.get("/deliveries")["deliveries"] if d["job_id"] == job["id"]]
    assert [(d["status"], d["status_code"]) for d in failed] == [("failed", 500)]
    assert gw.events("webhook_failed", job_id=job["id"])
    time.sleep(0.2)
    assert len(receiver.for_job(job["id"])) == 1  # GitHub does not retry
    receiver.status = 200
    again = gw.control.post("/webhooks/redeliver", {"delivery_id": failed[0]["id"]})
    assert again["redelivery"] is True
    assert again["guid"] == failed[0]["guid"]
    wait_for(lambda: len(receiver.for_job(job["id"])) == 2, what="redelivery")
    first, second = (h["x-github-delivery"] for h, _unused in receiver.for_job(job["id"]))
    assert first == second


def test_webhook_dropped_fault(gw: GithubWorld, receiver: Receiver) -> None:
    gw.subscribe(receiver.url)
    gw.add_fault(kind="webhook_dropped", match={"action": "queued"})
    job = gw.enqueue(OTHER_REPO, ["self-hosted", unique("drop")])["jobs"][0]
    gw.webhooks_idle()
    assert receiver.for_job(job["id"]) == []
    assert gw.events("webhook_dropped", job_id=job["id"])
    deliveries = [d for d in gw.control.get("/deliveries")["deliveries"] if d["job_id"] == job["id"]]
    assert [d["status"] for d in deliveries] == ["dropped"]


def test_unreachable_subscriber_is_a_failed_delivery(gw: GithubWorld) -> None:
    gw.subscribe("http://127.0.0.1:9/nothing-listens-here")
    job = gw.enqueue(OTHER_REPO, ["self-hosted", unique("unreach")])["jobs"][0]
    gw.webhooks_idle()
    failed = gw.events("webhook_failed", job_id=job["id"])
    assert failed
    assert failed[0]["status_code"] is None


def test_state_and_jobs_on_the_control_api(gw: GithubWorld) -> None:
    job = gw.enqueue(OTHER_REPO, ["self-hosted", unique("state")])["jobs"][0]
    state = gw.sandbox.state()["github"]
    assert {"runners", "jobs", "agents", "webhooks"} <= set(state)
    assert any(j["id"] == job["id"] for j in state["jobs"])
    listed = gw.control.get(f"/jobs?status=queued&repository={OTHER_REPO}")["jobs"]
    assert any(j["id"] == job["id"] for j in listed)


def test_http_faults_keep_githubs_error_shape_and_their_own_headers(gw: GithubWorld, gh: github.Github) -> None:
    route = "/repos/{owner}/{repo}/actions/runners"
    gw.add_fault(kind="status", service="github", route=route, status=502)
    with pytest.raises(github.GithubException) as err:
        gh.requester.requestJsonAndCheck("GET", f"{REPO_SCOPE}/actions/runners")
    assert err.value.status == 502
    assert set(err.value.data) >= {"message", "documentation_url"}
    reset = str(int(time.time()) + 1)
    gw.add_fault(
        kind="status",
        service="github",
        route=route,
        status=403,
        body={
            "message": "API rate limit exceeded for user ID 583231.",
            "documentation_url": "https://docs.github.com/rest",
        },
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
    )
    with pytest.raises(github.RateLimitExceededException) as err:
        gh.requester.requestJsonAndCheck("GET", f"{REPO_SCOPE}/actions/runners")
    assert err.value.headers["x-ratelimit-remaining"] == "0"
    assert err.value.headers["x-ratelimit-reset"] == reset
