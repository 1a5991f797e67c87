#!/usr/bin/env bash
# Install Nova (and Placement) from PyPI into a virtual environment of its own, cached by
# version, for the test suite's real-Nova lane (tests/sandbox/realnova). About 400 MB.
#
# Nova's functional-test harness, which runs the whole of Nova in one process, ships in the
# wheel; it needs oslotest and wsgi-intercept besides Nova's own requirements. SQLAlchemy
# 2.1 breaks Nova 34, hence the pin.
set -euo pipefail

dir="${1:?usage: install-nova.sh VENV_DIR}"
python="${NOVA_PYTHON:-python3}"
requirements=(
    "nova==${NOVA_VERSION:-34.0.0}"
    "openstack-placement==${PLACEMENT_VERSION:-16.0.0}"
    "SQLAlchemy>=2.0,<2.1"
    "oslotest==6.1.1"
    "wsgi-intercept==1.13.1"
)
stamp="$dir/.installed"
wanted="${requirements[*]}"

if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    exit 0
fi
# The stamp is written last: a half-done install is started over.
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
"$python" -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
echo "$wanted" > "$stamp"
echo "install-nova: installed ${requirements[0]} at ${dir}"
