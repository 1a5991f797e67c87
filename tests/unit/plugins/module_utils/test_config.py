"""Pool spec parsing: defaults, every field's validation, errors naming the dotted field path."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import (
    MAX_RUNNERS_LIMIT,
    PoolSpec,
    RunnerSoftware,
    UserDataOptions,
    is_uuid,
    network_choice,
    parse_controller_id,
    parse_duration,
    parse_pool,
    parse_pools,
)
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._model import PoolTiming, Scope, ScopeKind
from tests.unit.plugins.module_utils.factories import raw_pool


def error(raw: t.Any, path: str = "pools[0]") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_pool(raw, path=path)
    return info.value


def test_minimal_pool_takes_the_defaults() -> None:
    pool = parse_pool(raw_pool())
    assert pool == PoolSpec(
        name="small",
        scope=Scope(ScopeKind.REPOSITORY, "octo/hello"),
        labels=("self-hosted", "linux"),
        flavor="m1.small",
        image="ubuntu-22.04",
        networks=("runners",),
    )
    assert pool.min_idle == 0 and pool.max_runners == 10 and pool.create_concurrency == 4
    assert pool.timing == PoolTiming()
    assert pool.user_data == UserDataOptions()


def test_full_pool() -> None:
    pool = parse_pool(
        raw_pool(
            name="gpu-2",
            repository=None,
            organization="octo-org",
            labels=["gpu", "X64"],
            runner_group="ci",
            min_idle=2,
            max_runners=5,
            networks=["net-a", "3f0c1f0e-0000-4000-8000-000000000001"],
            security_groups=["runners"],
            key_name="ops",
            boot_from_volume=True,
            volume_size=40,
            availability_zone="nova",
            bootstrap_timeout="10m",
            offline_grace=60,
            registration_grace="90s",
            max_lifetime="2h",
            create_concurrency=8,
            user_data={
                "extra_env": {"FOO": "bar baz", "LEVEL": 3},
                "pre_job_script": "echo hello\n",
                "http_proxy": "http://proxy:3128",
                "https_proxy": "http://proxy:3128",
                "no_proxy": ["localhost", ".internal"],
                "runner": {
                    "directory": "/srv/runner",
                    "tarball_url": "https://x.test/r.tgz",
                    "tarball_sha256": "AB" * 32,
                },
                "runner_user": "ci",
            },
        )
    )
    assert pool.scope == Scope(ScopeKind.ORGANIZATION, "octo-org")
    assert pool.labels == ("gpu", "X64")
    assert pool.networks == ("net-a", "3f0c1f0e-0000-4000-8000-000000000001")
    assert pool.security_groups == ("runners",)
    assert (pool.boot_from_volume, pool.volume_size, pool.availability_zone) == (True, 40, "nova")
    assert pool.timing == PoolTiming(
        bootstrap_timeout=600.0, offline_grace=60.0, registration_grace=90.0, max_lifetime=7200.0
    )
    assert pool.user_data == UserDataOptions(
        extra_env={"FOO": "bar baz", "LEVEL": "3"},
        pre_job_script="echo hello\n",
        http_proxy="http://proxy:3128",
        https_proxy="http://proxy:3128",
        no_proxy="localhost,.internal",
        runner=RunnerSoftware(directory="/srv/runner", tarball_url="https://x.test/r.tgz", tarball_sha256="ab" * 32),
        runner_user="ci",
    )


def test_ansible_style_options_with_none_take_the_defaults() -> None:
    # Module options arrive with every key present; unset ones are None.
    raw = raw_pool(
        organization=None,
        enterprise=None,
        runner_group=None,
        min_idle=None,
        max_runners=None,
        security_groups=None,
        key_name=None,
        boot_from_volume=None,
        volume_size=None,
        availability_zone=None,
        user_data={"extra_env": None, "runner": {"directory": None, "tarball_url": None, "tarball_sha256": None}},
        bootstrap_timeout="15m",
        offline_grace="5m",
        registration_grace="2m",
        max_lifetime="24h",
        create_concurrency=None,
    )
    pool = parse_pool(raw)
    assert pool == parse_pool(raw_pool())
    assert pool.timing == PoolTiming()


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("repository", "octo/hello.world_2-x", ScopeKind.REPOSITORY),
        ("organization", "octo", ScopeKind.ORGANIZATION),
        ("enterprise", "big-corp", ScopeKind.ENTERPRISE),
    ],
)
def test_scopes(key: str, value: str, kind: ScopeKind) -> None:
    raw = raw_pool(repository=None)
    raw[key] = value
    assert parse_pool(raw).scope == Scope(kind, value)


def test_scope_is_required_exactly_once() -> None:
    assert error(raw_pool(repository=None)).field == "pools[0]"
    both = error(raw_pool(organization="octo"))
    assert both.field == "pools[0]"
    assert "found repository, organization" in both.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("repository", "octo"),
        ("repository", "octo/"),
        ("repository", "/hello"),
        ("repository", "octo/hello/x"),
        ("repository", "-octo/hello"),
        ("repository", "octo/.."),
        ("repository", "octo/hel lo"),
        ("organization", "octo/org"),
        ("organization", "o" * 40),
        ("enterprise", "big corp"),
        ("repository", ""),
        ("repository", 42),
    ],
)
def test_bad_scope_names(key: str, value: t.Any) -> None:
    raw = raw_pool(repository=None)
    raw[key] = value
    assert error(raw).field == f"pools[0].{key}"


@pytest.mark.parametrize("name", ["Small", "a" * 21, "-a", "a-", "a_b", "", "a.b", None, 3])
def test_bad_pool_names(name: t.Any) -> None:
    assert error(raw_pool(name=name)).field == "pools[0].name"


def test_pool_name_of_20_characters() -> None:
    assert parse_pool(raw_pool(name="a-" * 9 + "ab")).name == "a-a-a-a-a-a-a-a-a-ab"


@pytest.mark.parametrize(
    ("labels", "path"),
    [
        ([], "pools[0].labels"),
        ("linux", "pools[0].labels"),
        (None, "pools[0].labels"),
        (["linux", ""], "pools[0].labels[1]"),
        (["linux", "a,b"], "pools[0].labels[1]"),
        (["linux", " gpu"], "pools[0].labels[1]"),
        (["linux", 7], "pools[0].labels[1]"),
        (["linux", True], "pools[0].labels[1]"),
        (["linux", {"os": "linux"}], "pools[0].labels[1]"),
        (["['self-hosted']"], "pools[0].labels[0]"),
        (["linux", "{'os': 'linux'}"], "pools[0].labels[1]"),
        (["linux", "'x64'"], "pools[0].labels[1]"),
        (["Linux", "x64", "linux"], "pools[0].labels[2]"),
        ([f"l{i}" for i in range(101)], "pools[0].labels"),
    ],
)
def test_bad_labels(labels: t.Any, path: str) -> None:
    assert error(raw_pool(labels=labels)).field == path


def test_label_errors_say_what_is_wrong() -> None:
    assert str(error(raw_pool(labels=["linux", 7]))) == "pools[0].labels[1]: must be a string, got int 7"
    assert str(error(raw_pool(labels=["['self-hosted']"]))) == (
        "pools[0].labels[0]: must be a plain label, got \"['self-hosted']\": give labels as a YAML list of strings"
    )


def test_labels_are_kept_as_given_without_implied_defaults() -> None:
    # generate-jitconfig registers exactly these labels; GitHub adds no `self-hosted`.
    assert parse_pool(raw_pool(labels=["gpu"])).labels == ("gpu",)
    assert len(parse_pool(raw_pool(labels=[f"l{i}" for i in range(100)])).labels) == 100


def test_min_idle_above_max_runners_is_accepted_and_capped_by_the_planner() -> None:
    pools = parse_pools([raw_pool(name="a"), raw_pool(name="b", min_idle=100000, max_runners=1000)])
    assert (pools[1].min_idle, pools[1].max_runners) == (100000, 1000)


def test_max_runners_has_a_documented_upper_bound_and_the_error_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_pools([raw_pool(name="a"), raw_pool(name="b", max_runners=10**12)])
    assert info.value.field == "pools[1].max_runners"
    assert f"between 1 and {MAX_RUNNERS_LIMIT}" in str(info.value)
    assert parse_pool(raw_pool(max_runners=MAX_RUNNERS_LIMIT)).max_runners == MAX_RUNNERS_LIMIT


def test_per_run_limits_have_defaults_and_bounds() -> None:
    spec = parse_pool(raw_pool())
    assert (spec.max_create_per_run, spec.max_replace_per_run) == (20, 5)
    assert parse_pool(raw_pool(max_create_per_run="3", max_replace_per_run=0)).max_create_per_run == 3
    for key, bad in (("max_create_per_run", 0), ("max_create_per_run", 10**6), ("max_replace_per_run", -1)):
        with pytest.raises(ConfigError) as info:
            parse_pool(raw_pool(**{key: bad}))
        assert info.value.field == f"pools[0].{key}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_idle", -1),
        ("min_idle", True),
        ("min_idle", 1.5),
        ("min_idle", "two"),
        ("max_runners", 0),
        ("max_runners", False),
        ("create_concurrency", 0),
        ("create_concurrency", 33),
        ("volume_size", 0),
    ],
)
def test_bad_integers(key: str, value: t.Any) -> None:
    assert error(raw_pool(**{key: value, "boot_from_volume": key == "volume_size"})).field == f"pools[0].{key}"


def test_integers_accept_templated_strings_and_bounds() -> None:
    pool = parse_pool(raw_pool(min_idle="2", max_runners=" 4 ", create_concurrency=32))
    assert (pool.min_idle, pool.max_runners, pool.create_concurrency) == (2, 4, 32)
    assert parse_pool(raw_pool(min_idle=0, max_runners=1, create_concurrency=1)).max_runners == 1


def test_boot_from_volume_and_volume_size_go_together() -> None:
    assert error(raw_pool(boot_from_volume=True)).field == "pools[0].volume_size"
    assert error(raw_pool(volume_size=20)).field == "pools[0].volume_size"
    assert error(raw_pool(boot_from_volume="maybe", volume_size=20)).field == "pools[0].boot_from_volume"
    assert parse_pool(raw_pool(boot_from_volume="yes", volume_size="20")).volume_size == 20


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("30s", 30.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        (" 2H ", 7200.0),
        ("0.5m", 30.0),
        (0, 0.0),
    ],
)
def test_durations(value: t.Any, seconds: float) -> None:
    assert parse_duration(value, "x") == seconds


@pytest.mark.parametrize("value", ["", "m", "15x", "1h 30m", "abc", "-5", -1, True, [], None, float("nan"), "inf"])
def test_bad_durations(value: t.Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "pools[0].offline_grace")
    assert info.value.field == "pools[0].offline_grace"


def test_timing_fields_name_their_path() -> None:
    assert error(raw_pool(offline_grace="soon")).field == "pools[0].offline_grace"
    assert error(raw_pool(bootstrap_timeout=0)).field == "pools[0].bootstrap_timeout"
    assert error(raw_pool(bootstrap_timeout="1h", max_lifetime="1h")).field == "pools[0].max_lifetime"
    assert parse_pool(raw_pool(registration_grace=0, offline_grace=0)).timing.registration_grace == 0.0


@pytest.mark.parametrize("given", ["none", "auto", ["none"], ["auto"]])
def test_networks_none_or_auto_stand_alone(given: t.Any) -> None:
    pool = parse_pool(raw_pool(networks=given))
    choice = given if isinstance(given, str) else given[0]
    assert pool.networks == (choice,)
    assert network_choice(pool.networks) == choice
    assert error(raw_pool(networks=[choice, "runners"])).field == "pools[0].networks"


def test_networks_by_name_or_id_are_no_choice() -> None:
    assert network_choice(parse_pool(raw_pool(networks=["runners"])).networks) is None
    assert network_choice(("none-net",)) is None


def test_is_uuid() -> None:
    assert is_uuid("3f0c1f0e-0000-4000-8000-000000000001")
    assert not is_uuid("3f0c1f0e000040008000000000000001")  # Glance and Neutron ids have their dashes
    assert is_uuid("3F0C1F0E-0000-4000-8000-000000000001")
    assert not is_uuid("ubuntu-24.04-runner")
    assert not is_uuid("3f0c1f0e-0000-4000-8000-00000000000")
    assert not is_uuid("3f0c1f0e-0000-4000-8000-0000000000011")


def test_networks_and_security_groups() -> None:
    assert parse_pool(raw_pool(networks="runners")).networks == ("runners",)
    assert error(raw_pool(networks=[])).field == "pools[0].networks"
    assert error(raw_pool(networks=None)).field == "pools[0].networks"
    assert error(raw_pool(networks=["a", "a"])).field == "pools[0].networks[1]"
    assert error(raw_pool(networks={"a": 1})).field == "pools[0].networks"
    assert error(raw_pool(security_groups=["ok", ""])).field == "pools[0].security_groups[1]"


@pytest.mark.parametrize("key", ["flavor", "image"])
def test_flavor_and_image_are_required(key: str) -> None:
    assert error(raw_pool(**{key: None})).field == f"pools[0].{key}"
    assert error(raw_pool(**{key: "  "})).field == f"pools[0].{key}"


def test_optional_texts() -> None:
    assert error(raw_pool(runner_group="")).field == "pools[0].runner_group"
    assert error(raw_pool(key_name=5)).field == "pools[0].key_name"
    assert error(raw_pool(availability_zone="a\0b")).field == "pools[0].availability_zone"


def test_unknown_options_are_errors() -> None:
    assert error(raw_pool(flavour="m1.small")).field == "pools[0].flavour"
    assert error(raw_pool(user_data={"extra_envs": {}})).field == "pools[0].user_data.extra_envs"
    assert error(raw_pool(user_data={"runner": {"dir": "/x"}})).field == "pools[0].user_data.runner.dir"
    assert error("small").field == "pools[0]"
    assert error({1: "x"}).field == "pools[0]"


@pytest.mark.parametrize(
    ("env", "path"),
    [
        ({"1ABC": "x"}, "pools[0].user_data.extra_env.1ABC"),
        ({"A-B": "x"}, "pools[0].user_data.extra_env.A-B"),
        ({"RUNNER_DIR": "/x"}, "pools[0].user_data.extra_env.RUNNER_DIR"),
        ({"GHR_JIT_CONFIG": "x"}, "pools[0].user_data.extra_env.GHR_JIT_CONFIG"),
        ({"ghr_status": "0"}, "pools[0].user_data.extra_env.ghr_status"),
        ({"ACTIONS_RUNNER_HOOK_JOB_STARTED": "/x"}, "pools[0].user_data.extra_env.ACTIONS_RUNNER_HOOK_JOB_STARTED"),
        ({"https_proxy": "http://p"}, "pools[0].user_data.extra_env.https_proxy"),
        ({"DEBUG": True}, "pools[0].user_data.extra_env.DEBUG"),
        ({"LIST": [1]}, "pools[0].user_data.extra_env.LIST"),
        ({"NUL": "a\0b"}, "pools[0].user_data.extra_env.NUL"),
        ({"BIG": "x" * 9000}, "pools[0].user_data.extra_env"),
        (["A=b"], "pools[0].user_data.extra_env"),
    ],
)
def test_bad_extra_env(env: t.Any, path: str) -> None:
    assert error(raw_pool(user_data={"extra_env": env})).field == path


def test_extra_env_values_may_hold_anything_shell_special() -> None:
    env = {"A": 'it\'s $HOME `x` "q"\nline2', "_B": "", "C": 1.5}
    assert parse_pool(raw_pool(user_data={"extra_env": env})).user_data.extra_env == {
        "A": env["A"],
        "_B": "",
        "C": "1.5",
    }


@pytest.mark.parametrize(
    ("user_data", "path"),
    [
        ({"http_proxy": "proxy:3128"}, "pools[0].user_data.http_proxy"),
        ({"https_proxy": "ftp://proxy"}, "pools[0].user_data.https_proxy"),
        ({"http_proxy": "http://a b"}, "pools[0].user_data.http_proxy"),
        ({"no_proxy": "a, b"}, "pools[0].user_data.no_proxy"),
        ({"no_proxy": ["a", ""]}, "pools[0].user_data.no_proxy[1]"),
        ({"pre_job_script": ""}, "pools[0].user_data.pre_job_script"),
        ({"pre_job_script": "x" * (16 * 1024 + 1)}, "pools[0].user_data.pre_job_script"),
        ({"runner_user": "Runner"}, "pools[0].user_data.runner_user"),
        ({"runner_user": "a;b"}, "pools[0].user_data.runner_user"),
        ({"runner": {"directory": "relative/dir"}}, "pools[0].user_data.runner.directory"),
        ({"runner": {"directory": "/opt/my runner"}}, "pools[0].user_data.runner.directory"),
        ({"runner": {"directory": "/opt/$x"}}, "pools[0].user_data.runner.directory"),
        ({"runner": {"tarball_url": "https://x/r.tgz"}}, "pools[0].user_data.runner.tarball_sha256"),
        ({"runner": {"tarball_sha256": "a" * 64}}, "pools[0].user_data.runner.tarball_sha256"),
        (
            {"runner": {"tarball_url": "https://x/r.tgz", "tarball_sha256": "a" * 63}},
            "pools[0].user_data.runner.tarball_sha256",
        ),
        (
            {"runner": {"tarball_url": "https://x/r.tgz", "tarball_sha256": "g" * 64}},
            "pools[0].user_data.runner.tarball_sha256",
        ),
        (
            {"runner": {"tarball_url": "file:///r.tgz", "tarball_sha256": "a" * 64}},
            "pools[0].user_data.runner.tarball_url",
        ),
        ({"runner": "/opt/runner"}, "pools[0].user_data.runner"),
        ("yes", "pools[0].user_data"),
    ],
)
def test_bad_user_data(user_data: t.Any, path: str) -> None:
    assert error(raw_pool(user_data=user_data)).field == path


def test_parse_pools() -> None:
    pools = parse_pools([raw_pool(name="a"), raw_pool(name="b")])
    assert [p.name for p in pools] == ["a", "b"]
    assert parse_pools([]) == []
    with pytest.raises(ConfigError) as info:
        parse_pools([raw_pool(name="a"), raw_pool(name="b"), raw_pool(name="a")])
    assert info.value.field == "pools[2].name"
    assert "pools[0]" in info.value.message
    with pytest.raises(ConfigError) as info:
        parse_pools({"name": "a"})
    assert info.value.field == "pools"
    with pytest.raises(ConfigError) as info:
        parse_pools([raw_pool(name="a"), raw_pool(name="b", labels=[])])
    assert info.value.field == "pools[1].labels"


@pytest.mark.parametrize("value", ["ci", "prodeu1", "a" * 20, "0"])
def test_controller_ids(value: str) -> None:
    assert parse_controller_id(value) == value


@pytest.mark.parametrize("value", ["", "a" * 21, "CI", "ci_prod", "-ci", "ci-", "ci.prod", "prod-eu-1", None, 7])
def test_bad_controller_ids(value: t.Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_controller_id(value)
    assert info.value.field == "controller_id"


def test_error_text_is_field_then_message() -> None:
    err = error(raw_pool(max_runners=-3), path="pools[4]")
    assert str(err) == f"pools[4].max_runners: {err.message}"
    assert "-3" in err.message


def test_creation_backoff_and_its_max() -> None:
    pool = parse_pool(raw_pool())
    assert (pool.creation_backoff, pool.creation_backoff_max) == (60.0, 1800.0)
    pool = parse_pool(raw_pool(creation_backoff="2m", creation_backoff_max="1h"))
    assert (pool.creation_backoff, pool.creation_backoff_max) == (120.0, 3600.0)
    assert parse_pool(raw_pool(creation_backoff=0, creation_backoff_max=0)).creation_backoff == 0.0
    assert parse_pool(raw_pool(creation_backoff="1m", creation_backoff_max="30m")) == parse_pool(raw_pool())
    assert error(raw_pool(creation_backoff="later")).field == "pools[0].creation_backoff"
    too_low = error(raw_pool(creation_backoff="10m", creation_backoff_max="5m"))
    assert str(too_low) == "pools[0].creation_backoff_max: must be >= creation_backoff (600s)"


def test_pools_know_where_they_sit_in_the_configuration() -> None:
    pools = parse_pools([raw_pool(name="a"), raw_pool(name="b")])
    assert [p.field("image") for p in pools] == ["pools[0].image", "pools[1].image"]
    assert parse_pool(raw_pool(), path="pool").field("networks[0]") == "pool.networks[0]"
    # The place is no part of the pool's identity.
    assert pools[1] == parse_pool(raw_pool(name="b"), path="elsewhere")
