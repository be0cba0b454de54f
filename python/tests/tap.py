# SPDX-License-Identifier: Apache-2.0
"""Run unittest modules and print one TAP line per test (no plan: the shell
wrapper, t_python.sh, counts them through tests/integration/lib.sh).

usage: python3 tap.py MODULE...   (modules of this directory, e.g. test_vm)
"""
import sys
import time
import traceback
import unittest


class TapResult(unittest.TestResult):
    def __init__(self) -> None:
        super().__init__()
        self.t0 = 0.0

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.t0 = time.monotonic()

    def _line(self, ok: bool, test: unittest.TestCase, extra: str = "") -> None:
        name = test.id().split(".", 1)[-1]
        print(f"{'ok' if ok else 'not ok'} - {name} ({time.monotonic() - self.t0:.1f} s){extra}", flush=True)

    def _diag(self, err) -> None:
        for line in "".join(traceback.format_exception(*err)).splitlines():
            print(f"# {line}", flush=True)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test: unittest.TestCase, err) -> None:
        super().addFailure(test, err)
        self._diag(err)
        self._line(False, test)

    def addError(self, test: unittest.TestCase, err) -> None:
        super().addError(test, err)
        self._diag(err)
        self._line(False, test)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._line(True, test, f" # SKIP {reason}")

    def addExpectedFailure(self, test: unittest.TestCase, err) -> None:
        super().addExpectedFailure(test, err)
        self._line(True, test, " # TODO expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._line(False, test, " (unexpected success)")


def main() -> int:
    suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:])
    result = TapResult()
    suite.run(result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
