#!/bin/sh
# Builds sevrouter and everything it needs as wheels, then installs them into a fresh virtualenv
# with no pip, no setuptools and no dev extras in it. The image runs this in its builder stage
# (see ../Dockerfile); tests/deploy/test_dockerfile.py runs the very same script in a temporary
# directory, so CI exercises the image's install steps without a Docker engine.
#
#   docker/install.sh SOURCE_DIR WHEEL_DIR VENV_DIR [RULES_DIR]
#
#   SOURCE_DIR  the project (the directory holding pyproject.toml)
#   WHEEL_DIR   where the wheels are built; must not hold an older sevrouter wheel
#   VENV_DIR    the runtime virtualenv to create; its bin/sevrouter is the command
#   RULES_DIR   optional: validate these rules with the installed command (sevrouter check)
#
# PYTHON names the interpreter that builds and owns the virtualenv (default: python3). It needs
# pip 22.3 or newer (pip --python).
set -eu

if [ "$#" -lt 3 ] || [ "$#" -gt 4 ]; then
    echo "usage: $0 SOURCE_DIR WHEEL_DIR VENV_DIR [RULES_DIR]" >&2
    exit 2
fi
source_dir=$1
wheel_dir=$2
venv_dir=$3
rules_dir=${4:-}
python=${PYTHON:-python3}
# pip reads a bare word as a package name: make the source a path.
case $source_dir in
    /* | ./* | ../*) ;;
    *) source_dir=./$source_dir ;;
esac

echo "install.sh: building wheels for $source_dir into $wheel_dir"
"$python" -m pip wheel --disable-pip-version-check --wheel-dir "$wheel_dir" "$source_dir"

# Exactly one sevrouter wheel: the one just built. The name is fixed by pyproject.toml.
set -- "$wheel_dir"/sevrouter-*.whl
if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
    echo "install.sh: expected exactly one sevrouter wheel in $wheel_dir, found: $*" >&2
    exit 1
fi
wheel=$1

echo "install.sh: installing $(basename "$wheel") into $venv_dir"
"$python" -m venv --without-pip "$venv_dir"
# Only the wheels built above (--no-index): the install cannot pick up anything else, and the
# runtime virtualenv gets the package's dependencies, not its [dev] extras.
"$python" -m pip --python "$venv_dir/bin/python" install --disable-pip-version-check \
    --no-index --find-links "$wheel_dir" "$wheel"

"$venv_dir/bin/sevrouter" --version
if [ -n "$rules_dir" ]; then
    "$venv_dir/bin/sevrouter" check "$rules_dir"
fi
