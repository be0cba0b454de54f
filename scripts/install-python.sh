#!/usr/bin/env bash
# Install the Python package (python/, docs/python.md) for each interpreter named
# as an argument; none: Debian's /usr/bin/python3 and the python3 first on PATH
# when that is another interpreter (pyenv, a virtualenv). scripts/setup.sh runs it.
#
# pip, offline (--no-index; the in-tree backend needs nothing from PyPI), builds
# against the libsmolvm pkg-config finds (set PKG_CONFIG_PATH for another one,
# e.g. build/meson-uninstalled). It installs into the interpreter's own site
# directory, never a user site (root's install serves every user): for Debian's
# python3 that is /usr/local/lib/python3.X/dist-packages, beside no Debian package.
# An interpreter whose installed smolvm was built from the same sources (and
# libsmolvm) is skipped, so a second run does nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install-python: %s\n' "$*" >&2; exit 1; }

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)

pythons=("$@")
if [ "${#pythons[@]}" -eq 0 ]; then
        [ -x /usr/bin/python3 ] && pythons+=(/usr/bin/python3)
        if command -v python3 >/dev/null; then
                pythons+=("$(command -v python3)")
        fi
        [ "${#pythons[@]}" -gt 0 ] || die "no python3 found: install Debian's (apt-get install python3 python3-dev)"
fi

# Python's own view of itself: the interpreter (a pyenv shim resolves), its prefix
# (one install per prefix: a venv has its own), its site directory, whether it is
# externally managed (PEP 668) outside a venv.
probe='import os, sys, sysconfig
managed = sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED"))
print(sys.executable); print(sys.prefix); print(sysconfig.get_paths()["platlib"]); print(int(managed))'

export PYTHONDONTWRITEBYTECODE=1
done_prefixes=()
for py in "${pythons[@]}"; do
        mapfile -t about < <(cd / && "$py" -I -c "$probe") || die "$py does not run"
        real=${about[0]} prefix=${about[1]} site=${about[2]} managed=${about[3]}
        case " ${done_prefixes[*]-} " in *" $prefix "*) continue ;; esac
        done_prefixes+=("$prefix")

        want=$("$py" -I "$here/python/build_backend/smolvm_build.py" --source-id) ||
                die "$py: cannot build the smolvm package (the message above says why)"
        have=$(cd / && "$py" -I -c 'from smolvm._build import SOURCE_ID; print(SOURCE_ID)' 2>/dev/null || true)
        if [ "$have" = "$want" ]; then
                step "python package: up to date for $real ($site)"
                continue
        fi
        step "python package: installing for $real into $site"
        env=(PIP_NO_INDEX=1 PIP_USER=0 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1)
        # Debian marks its python3 externally managed; /usr/local is where locally
        # built packages belong, and pip puts them there.
        [ "$managed" = 1 ] && env+=(PIP_BREAK_SYSTEM_PACKAGES=1)
        [ -n "${PKG_CONFIG_PATH-}" ] && env+=("PKG_CONFIG_PATH=$PKG_CONFIG_PATH")
        sudo=()
        mkdir_target=$site
        while [ ! -d "$mkdir_target" ]; do mkdir_target=$(dirname "$mkdir_target"); done
        [ -w "$mkdir_target" ] || sudo=("${as_root[@]}")
        (cd "$here/python" && "${sudo[@]}" env "${env[@]}" "$py" -m pip install --quiet --no-build-isolation \
                --no-deps --force-reinstall . >&2) ||
                die "$py: pip install ./python failed (the message above says why)"
        have=$(cd / && "$py" -I -c 'from smolvm._build import SOURCE_ID; print(SOURCE_ID)') ||
                die "$py: smolvm was installed but does not import"
        [ "$have" = "$want" ] || die "$py: imports another smolvm than the one just installed"
done
