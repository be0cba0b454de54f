#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Ten agents, each in its own fresh VM, five at a time from a thread pool.
Commands release the GIL, so the threads really run in parallel."""
import concurrent.futures
import re

from smolvm import SmolVM

TASK = """
import os, platform
print(f"{os.environ['AGENT']} ran on {platform.node()} in {os.getcwd()}")
"""


def create_agent_workspace(agent_id: str) -> str:
    """Create an isolated workspace for one agent."""
    with SmolVM() as vm:
        # Each agent gets a fresh VM
        vm.run(f"mkdir -p /workspace/{agent_id}")
        vm.run(f"cd /workspace/{agent_id} && git init -q .")
        vm.write_file(f"/workspace/{agent_id}/task.py", TASK)
        result = vm.run(f"cd /workspace/{agent_id} && python3 task.py", env={"AGENT": agent_id})
        return result.output


if __name__ == "__main__":
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as executor:
        futures = [executor.submit(create_agent_workspace, f"agent-{i}") for i in range(10)]
        outputs = []
        for future in concurrent.futures.as_completed(futures):
            output = future.result()
            print(output)
            outputs.append(output)
    # Ten machines: each is named smolvm-<its VM id>, and no two share a name.
    found = [re.fullmatch(r"(agent-\d) ran on (smolvm-[0-9a-f]{12}) in /workspace/(agent-\d)", o) for o in outputs]
    assert all(m and m[1] == m[3] for m in found), outputs
    assert sorted(m[1] for m in found) == [f"agent-{i}" for i in range(10)], outputs
    assert len({m[2] for m in found}) == 10, outputs
    assert SmolVM.list() == [], "a VM was left behind"
    print("ten_agents: ok")
