#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""An agent workspace that outlives the process: each turn is a new Python
process that reconnects with SmolVM.from_id() and finds the previous turn's work.

    python3 multi_turn.py              # set up, two turns (two processes), clean up
    python3 multi_turn.py turn CMD     # one turn, as an agent framework would run it
"""
import subprocess
import sys

from smolvm import SmolVM, VMState

WORKSPACE = "agent-workspace"  # a stable name to reconnect by


def create_workspace() -> None:
    vm = SmolVM(vm_id=WORKSPACE, vcpu_count=1, mem_size_mib=512)
    vm.start()
    vm.run("mkdir -p /root/work && cd /root/work && git init -q . && echo 'print(6 * 7)' > analyze.py")
    print(f"Agent workspace ready: {vm.vm_id}")
    vm.close()  # release this process's handle; the VM keeps running


def execute_agent_task(task: str) -> str:
    """Execute an agent task in the persistent workspace."""
    vm = SmolVM.from_id(WORKSPACE)
    if vm.status != VMState.RUNNING:
        vm.start()
    result = vm.run(task, timeout=120, cwd="/root/work")
    vm.close()
    return result.stdout if result.ok else result.stderr


def clean_up() -> None:
    vm = SmolVM.from_id(WORKSPACE)
    vm.stop()
    vm.delete()
    print("Workspace deleted")


def turn_in_new_process(task: str) -> str:
    return subprocess.run([sys.executable, __file__, "turn", task], check=True, capture_output=True,
                          text=True).stdout


if __name__ == "__main__":
    if sys.argv[1:2] == ["turn"]:
        print(execute_agent_task(sys.argv[2]), end="")
        sys.exit(0)
    create_workspace()
    try:
        first = turn_in_new_process("python3 analyze.py > report.txt && git add -A && echo written")
        second = turn_in_new_process("cat report.txt; git status --short")
        print("turn 1:", first.strip())
        print("turn 2:", second.strip())
        assert first == "written\n", first
        assert second == "42\nA  analyze.py\nA  report.txt\n", second
    finally:
        clean_up()
    print("multi_turn: ok")
