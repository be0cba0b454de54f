#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Give the sandbox a secret as an environment variable, never as an argument:
smolvm sends values inside its requests, so no command line in the guest (or on
the host) ever shows it. This checks every process's /proc/PID/cmdline in the
guest while an app that uses the key runs."""
import hashlib
import os
import secrets

from smolvm import SmolVM

# From the host environment in real life: os.getenv("API_KEY").
API_KEY = os.getenv("API_KEY") or "sk-" + secrets.token_hex(16)

APP = """
import hashlib, os, time
key = os.environ["API_KEY"]
print(hashlib.sha256(key.encode()).hexdigest(), flush=True)
time.sleep(30)
"""

SCAN = r"""
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            print(f.read().replace(b"\0", b" ").decode(errors="replace"))
    except OSError:
        pass
"""

if __name__ == "__main__":
    with SmolVM(env_vars={"API_KEY": API_KEY}) as vm:
        vm.write_file("/root/app.py", APP)
        vm.write_file("/root/scan.py", SCAN)
        # The app runs in the background while we look at every command line.
        app = vm.stream("python3 /root/app.py")
        seen = ""
        for _, text in app:  # up to the app's first line
            seen += text
            if seen.endswith("\n"):
                break
        seen = seen.strip()
        assert seen == hashlib.sha256(API_KEY.encode()).hexdigest(), "the app did not get the key"
        cmdlines = vm.run("python3 /root/scan.py").stdout
        app.close()
        print(f"{len(cmdlines.splitlines())} guest command lines checked")
        assert "python3 /root/app.py" in cmdlines, cmdlines  # the scan does see the app
        assert API_KEY not in cmdlines, "the secret is on a command line"
        # A per-command secret travels the same way.
        token = secrets.token_hex(8)
        r = vm.run("python3 /root/scan.py; echo ${#TOKEN}", env={"TOKEN": token})
        assert token not in r.stdout and r.stdout.endswith("16\n"), r.stdout
    print("secret_env: ok")
