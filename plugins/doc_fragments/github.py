# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  github_api_url:
    description:
      - Base URL of the GitHub REST API.
      - For GitHub Enterprise Server use C(https://HOST/api/v3).
      - If not set, the environment variable E(GITHUB_API_URL) is used.
    type: str
    default: https://api.github.com
  github_token:
    description:
      - A token with the right to manage self-hosted runners of the pools' scopes
        (fine-grained C(administration:write) on repositories, C(organization_self_hosted_runners:write) on organizations).
      - Mutually exclusive with O(github_app_id).
      - If neither a token nor any App option is given, the environment variable E(GITHUB_TOKEN) is used;
        when it is not set either, the E(GITHUB_APP_*) variables are.
    type: str
  github_app_id:
    description:
      - ID of the GitHub App to authenticate as. Requires O(github_app_installation_id)
        and O(github_app_private_key) or O(github_app_private_key_path).
      - If not set, the environment variable E(GITHUB_APP_ID) is used.
    type: str
  github_app_private_key:
    description:
      - PEM text of the GitHub App's private key.
      - If not set, the environment variable E(GITHUB_APP_PRIVATE_KEY) is used.
    type: str
  github_app_private_key_path:
    description:
      - Path of a file holding the GitHub App's private key.
      - If not set, the environment variable E(GITHUB_APP_PRIVATE_KEY_FILE) is used.
    type: path
  github_app_installation_id:
    description:
      - ID of the App's installation on the organization or repository.
      - If not set, the environment variable E(GITHUB_APP_INSTALLATION_ID) is used.
    type: int
  github_timeout:
    description:
      - Seconds after which one GitHub API request is abandoned.
    type: float
    default: 30
  github_max_rate_limit_wait:
    description:
      - When GitHub answers with a rate limit, wait for at most this many seconds before retrying;
        a longer wait fails the task with a message that says when the limit resets.
    type: float
    default: 60
  github_write_burst:
    description:
      - Mutating GitHub requests (JIT registrations, runner deletions) pass one token bucket per credential,
        shared by all pools of the task. This many go at once; then O(github_writes_per_minute).
      - GitHub's secondary rate limit allows about 80 content-creating requests a minute and 500 an hour.
    type: int
    default: 80
  github_writes_per_minute:
    description:
      - How fast the bucket of O(github_write_burst) refills. The time requests waited on it is returned in
        C(github_rate.write_wait).
    type: float
    default: 80
requirements:
  - PyGithub >= 2.10.0
notes:
  - A task that gives any App option authenticates as the App, taking the App options it does not give
    from the E(GITHUB_APP_*) environment variables.
  - The token, the App key and the just-in-time runner configurations are never returned or logged.
"""
