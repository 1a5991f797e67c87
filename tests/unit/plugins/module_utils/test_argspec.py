"""Which GitHub credentials apply when the task and the environment give different kinds."""

from __future__ import annotations

from ansible_collections.selfhosted.github_runners.plugins.module_utils._argspec import github_credentials

ENV_BOTH = {
    "GITHUB_TOKEN": "tok",
    "GITHUB_APP_ID": "7",
    "GITHUB_APP_PRIVATE_KEY_FILE": "/k.pem",
    "GITHUB_APP_INSTALLATION_ID": "9",
}


def test_environment_token_wins_over_environment_app() -> None:
    assert github_credentials({}, ENV_BOTH) == {"github_token": "tok"}


def test_task_app_option_selects_the_app_and_completes_it_from_the_environment() -> None:
    creds = github_credentials({"github_app_id": "8"}, ENV_BOTH)
    assert creds == {"github_app_id": "8", "github_app_private_key_path": "/k.pem", "github_app_installation_id": "9"}


def test_task_token_wins_over_everything() -> None:
    assert github_credentials({"github_token": "mine"}, ENV_BOTH) == {"github_token": "mine"}


def test_task_key_text_replaces_the_environment_key_file() -> None:
    creds = github_credentials({"github_app_private_key": "PEM"}, ENV_BOTH)
    assert creds["github_app_private_key"] == "PEM"
    assert "github_app_private_key_path" not in creds


def test_app_from_environment_only() -> None:
    env = {k: v for k, v in ENV_BOTH.items() if k != "GITHUB_TOKEN"}
    assert github_credentials({}, env)["github_app_id"] == "7"


def test_nothing_given() -> None:
    assert github_credentials({"github_token": None, "github_app_id": ""}, {}) == {}
