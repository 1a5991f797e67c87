#!/usr/bin/env bash
# Prepares a VM of a Debian or Ubuntu base image to be snapshotted as a runner image:
# the GitHub Actions runner in /opt/actions-runner, an account `runner` to run it, and
# cloud-init reset so that every VM booted from the snapshot runs its own user data.
# Run it as root on the VM, then power the VM off and snapshot it:
#   RUNNER_VERSION=2.x.y RUNNER_SHA256=<sha256 of the release tarball> bash install-runner.sh
set -euo pipefail

: "${RUNNER_VERSION:?set RUNNER_VERSION to a release of github.com/actions/runner, such as 2.x.y}"
: "${RUNNER_SHA256:?set RUNNER_SHA256 to the sha256 of that release tarball (listed on its release page)}"
RUNNER_ARCH="${RUNNER_ARCH:-x64}"  # x64 or arm64
RUNNER_DIR=/opt/actions-runner
RUNNER_USER=runner

export DEBIAN_FRONTEND=noninteractive
apt-get update
# What the user data script uses (bash, curl, sha256sum, tar, runuser, poweroff), and
# what most jobs expect on a runner.
apt-get install -y --no-install-recommends \
    ca-certificates curl git jq tar gzip unzip util-linux systemd-sysv cloud-init

# The account the runner runs as; sudo without a password, as on GitHub's hosted runners
# (drop it if your jobs must not become root).
id -u "${RUNNER_USER}" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "${RUNNER_USER}"
echo "${RUNNER_USER} ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/90-runner
chmod 0440 /etc/sudoers.d/90-runner

# The runner, checked against its published sha256, with its own dependencies (libicu, ...).
tarball="$(mktemp)"
curl -fsSL --retry 5 -o "${tarball}" \
    "https://github.com/actions/runner/releases/download/v${RUNNER_VERSION}/actions-runner-linux-${RUNNER_ARCH}-${RUNNER_VERSION}.tar.gz"
printf '%s  %s\n' "${RUNNER_SHA256}" "${tarball}" | sha256sum --check --quiet -
mkdir -p "${RUNNER_DIR}"
tar -xzf "${tarball}" -C "${RUNNER_DIR}"
rm -f "${tarball}"
"${RUNNER_DIR}/bin/installdependencies.sh"
chown -R "${RUNNER_USER}:" "${RUNNER_DIR}"

# Nothing of this VM's identity in the snapshot: no registered runner, no SSH host keys,
# no cloud-init state (each VM from the image runs its user data on first boot).
rm -f "${RUNNER_DIR}/.runner" "${RUNNER_DIR}/.credentials" "${RUNNER_DIR}/.credentials_rsaparams"
rm -f /etc/ssh/ssh_host_*
cloud-init clean --logs
apt-get clean
