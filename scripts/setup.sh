#!/usr/bin/env bash
# README command 1: install what smolvm needs (Debian packages only), build with
# meson into build/, install to /usr/local, install the Python package for each
# python3 (scripts/install-python.sh), build the default image into the system
# store every user reads if it is not cached. Idempotent: a second run only
# rebuilds what changed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

as_root=()
if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: run as root or install sudo"
        as_root=(sudo)
fi

# 1. Debian packages: install only what is missing, so a rerun needs no network.
mapfile -t pkgs < <(grep -v -e '^#' -e '^$' scripts/deps.txt)
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
# npm: Debian's package, unless the installed nodejs bundles it (NodeSource's conflicts with it).
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
        step "installing Debian packages: ${missing[*]}"
        "${as_root[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 2. Build and install.
if [ ! -f build/build.ninja ]; then
        step "configuring build/ (meson)"
        meson setup build --prefix=/usr/local >&2
fi
step "building"
ninja -C build >&2
step "installing to /usr/local"
"${as_root[@]}" meson install -C build --quiet >&2
"${as_root[@]}" ldconfig

# 3. The Python package (docs/python.md), for Debian's /usr/bin/python3 and for
# the python3 first on PATH when that is another one (pyenv, a virtualenv): built
# offline against the libsmolvm just installed; skipped when already current.
bash scripts/install-python.sh

# 4. The default image (kernel, initramfs with this build's smolvm-init, Debian rootfs),
# in the system store every user reads (/var/lib/smolvm; docs/internals.md "Paths"), so
# any user can `smolvm run` at once. A no-op when the cache already holds it; rebuilds
# only the initramfs when the init changed.
step "building the default image into the system store (first time: a few minutes)"
"${as_root[@]}" smolvm image build --system >&2
# A default image in the caller's own store is looked up before the system one: keep it
# current too (seconds: its layers are cached), or it would shadow the new one.
own=${SMOLVM_HOME:-$HOME/.local/state/smolvm}
if [ -e "$own/images/default" ]; then
        step "refreshing your own default image ($own/images/default)"
        smolvm image build >&2
fi
step "ready: try  smolvm run -- uname -a"
