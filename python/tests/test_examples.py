# SPDX-License-Identifier: Apache-2.0
"""The examples/ scripts, each run as a user would (its own process); each one
asserts what it shows and ends with "NAME: ok"."""
import os
import re
import subprocess
import sys
import unittest

EXAMPLES = os.environ.get("SMOLVM_EXAMPLES_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def run_example(test: unittest.TestCase, name: str, *args: str) -> str:
    p = subprocess.run([sys.executable, os.path.join(EXAMPLES, name + ".py"), *args], capture_output=True,
                       text=True, timeout=600)
    test.assertEqual(p.returncode, 0, p.stdout + p.stderr)
    test.assertTrue(p.stdout.endswith(f"{name}: ok\n"), p.stdout)
    return p.stdout


class TestExamples(unittest.TestCase):
    def test_llm_tool(self) -> None:
        out = run_example(self, "llm_tool")
        self.assertIn("python: 55\n", out)

    def test_multi_turn(self) -> None:
        out = run_example(self, "multi_turn")
        self.assertIn("turn 2: 42\n", out)

    def test_secret_env(self) -> None:
        run_example(self, "secret_env")

    def test_readonly_repo(self) -> None:
        out = run_example(self, "readonly_repo")
        self.assertIn("Read-only file system", out)


class TestTenAgents(unittest.TestCase):
    def test_ten_agents(self) -> None:
        out = run_example(self, "ten_agents")
        hosts = re.findall(r"^agent-\d ran on (smolvm-[0-9a-f]{12}) in /workspace/agent-\d$", out, re.M)
        self.assertEqual(len(hosts), 10, out)
        self.assertEqual(len(set(hosts)), 10, out)  # ten machines, ten names


if __name__ == "__main__":
    unittest.main()
