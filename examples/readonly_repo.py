#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Let an agent read a repository without being able to change it: the host
directory is mounted read-only (the host refuses every write, whatever the
guest kernel does).

    python3 readonly_repo.py [REPO]    # default: the smolvm checkout itself
"""
import os
import sys

from smolvm import SmolVM

if __name__ == "__main__":
    repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    with SmolVM(host_mounts=[(repo, "/workspace", "ro")]) as vm:
        listing = vm.run("ls /workspace").output
        print(listing)
        readme = vm.run("head -n 3 /workspace/README.md").output
        print(readme)
        attempt = vm.run("echo pwned > /workspace/README.md")
        print(f"write attempt: exit {attempt.exit_code}: {attempt.stderr.strip()}")
        assert "README.md" in listing.split()
        assert not attempt.ok and "Read-only file system" in attempt.stderr
    with open(os.path.join(repo, "README.md")) as f:
        assert "pwned" not in f.read()
    print("readonly_repo: ok")
