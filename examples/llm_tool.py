#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A sandbox tool for an LLM: run the code a model wrote in a fresh microVM.

Hand TOOL to your model (Anthropic's tool use shown; OpenAI's function calling
takes the same JSON schema) and call execute_code_in_sandbox(**tool_input) when
it asks. Each call gets its own VM, deleted when the call returns. Run this file
to try the tool without a model.
"""
from smolvm import SmolVM
from smolvm.exceptions import CommandExecutionUnavailableError, OperationTimeoutError, SmolVMError

TOOL = {
    "name": "execute_code_in_sandbox",
    "description": "Execute Python or Bash code in an isolated sandbox VM",
    "input_schema": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "Code to execute"},
            "language": {"type": "string", "enum": ["python", "bash"]},
        },
        "required": ["code"],
    },
}


def execute_code_in_sandbox(code: str, language: str = "python") -> str:
    """Tool for an AI agent to execute code safely.

    Returns the output, or an error message the model can read.
    """
    with SmolVM() as vm:
        if language == "python":
            # The code travels as a file, never on a command line.
            vm.write_file("/tmp/script.py", code)
            result = vm.run("python3 /tmp/script.py", timeout=30)
        elif language == "bash":
            result = vm.run(code, timeout=30)
        else:
            return f"Unsupported language: {language}"

        if result.ok:
            return result.stdout
        return f"Error (exit {result.exit_code}): {result.stderr}"


def safe_execute(code: str, timeout: float = 30) -> dict:
    """The same with every failure turned into a result (the seeds' error handling)."""
    try:
        with SmolVM() as vm:
            result = vm.run(code, timeout=timeout)
            return {
                "success": result.ok,
                "output": result.stdout,
                "error": result.stderr if not result.ok else None,
                "exit_code": result.exit_code,
            }
    except OperationTimeoutError:
        return {"success": False, "error": f"Execution timed out after {timeout:g} seconds"}
    except CommandExecutionUnavailableError as e:
        return {"success": False, "error": f"Cannot execute commands: {e.reason}"}
    except SmolVMError as e:
        return {"success": False, "error": f"VM error: {e}"}


if __name__ == "__main__":
    # With a model (pip install anthropic):
    #   response = client.messages.create(model=..., max_tokens=1024, tools=[TOOL],
    #       messages=[{"role": "user", "content": "Calculate fibonacci(10)"}])
    #   for block in response.content:
    #       if block.type == "tool_use" and block.name == "execute_code_in_sandbox":
    #           print(execute_code_in_sandbox(**block.input))
    fib = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nprint(fib(10))\n"
    out = execute_code_in_sandbox(fib)
    print("python:", out.strip())
    assert out == "55\n", out
    out = execute_code_in_sandbox("echo $((6 * 7)); exit 3", language="bash")
    print("bash:", out.strip())
    assert out.startswith("Error (exit 3)"), out
    assert execute_code_in_sandbox("x", language="cobol") == "Unsupported language: cobol"
    res = safe_execute("while :; do :; done", timeout=2)
    print("runaway:", res)
    assert res == {"success": False, "error": "Execution timed out after 2 seconds"}, res
    print("llm_tool: ok")
