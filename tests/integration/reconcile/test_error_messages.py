"""Bad input through the module: each message names the field or the pool."""

from __future__ import annotations

import typing as t

from tests.integration.reconcile.conftest import Ansible, pool_dict


def run_failing(ansible: Ansible, pools: list[dict[str, t.Any]], **extra: t.Any) -> dict[str, t.Any]:
    return ansible.run(
        "github_runner_pool", {"controller_id": "it", "pools": pools, **extra}, expect_failure=True
    ).result


def test_an_unknown_flavor_names_the_field_and_the_flavors_there_are(sandbox: t.Any, ansible: Ansible) -> None:
    good, typo = pool_dict(sandbox), pool_dict(sandbox, min_idle=1, flavor="m1.smal")
    result = run_failing(ansible, [good, typo])
    assert f"pool {typo['name']}: pools[1].flavor: no flavor named 'm1.smal' (flavors: " in result["msg"]
    assert "m1.small" in result["msg"].split("(flavors: ")[1]


def test_labels_written_as_text_or_not_strings_are_refused_with_the_field(sandbox: t.Any, ansible: Ansible) -> None:
    listed = run_failing(ansible, [pool_dict(sandbox, labels=["['self-hosted']"])])
    assert listed["msg"].startswith("invalid option pools[0].labels[0]: must be a plain label, got \"['self-hosted']\"")
    number = run_failing(ansible, [pool_dict(sandbox, labels=["self-hosted", 7])])
    assert number["msg"] == "invalid option pools[0].labels[1]: must be a string, got int 7"
    mapping = run_failing(ansible, [pool_dict(sandbox, labels=[{"os": "linux"}])])
    assert mapping["msg"].startswith("invalid option pools[0].labels[0]: must be a string, got dict")


def test_an_unsupported_pool_key_names_the_field(sandbox: t.Any, ansible: Ansible) -> None:
    result = run_failing(ansible, [pool_dict(sandbox), pool_dict(sandbox, flavour="m1.small")])
    # Ansible checks pool keys before the module runs: its message names the key and the known ones.
    assert "module: pools.flavour. Supported parameters include: " in result["msg"]
    assert " flavor, " in result["msg"]


def test_missing_github_credentials_name_the_options_and_their_environment(sandbox: t.Any, ansible: Ansible) -> None:
    pool = pool_dict(sandbox)
    # The run gets the sandbox's environment without its GitHub credentials.
    saved = {k: sandbox.env.pop(k) for k in list(sandbox.env) if k.startswith("GITHUB_") and k != "GITHUB_API_URL"}
    try:
        result = run_failing(ansible, [pool])
    finally:
        sandbox.env.update(saved)
    assert result["msg"].startswith(
        "invalid option github_token: no GitHub credentials: give github_token (env GITHUB_TOKEN)"
    )
    assert "github_app_private_key_path (env GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE)" in result["msg"]
    assert "github_auth" not in result["msg"]


def test_a_wrong_openstack_password_is_named_as_the_authentication_call(sandbox: t.Any, ansible: Ansible) -> None:
    result = run_failing(ansible, [pool_dict(sandbox)], auth={"password": "not-the-password"})
    message = result["msg"]
    assert message.startswith("no pool was reconciled: the server listing failed: OpenStack authentication (POST ")
    assert "/auth/tokens) failed (HTTP 401)" in message
    assert "/servers/detail" not in message
