"""Steps answered by a local Python function (`call = "package.module:function"`).

Rule-based answers (keyword urgency, a regular expression, a lookup table) cost
nothing and never fail for the provider's reasons, which makes them the natural
stand-in for a model whose breaker is open. The function takes one argument, what
a template sees (the item's fields and `steps`), and returns the step's output: any
JSON value. It runs on the event loop, so it must be quick and must not block.

Functions are imported once, before anything is sent. The workflow file's directory
and then the current directory are searched first (as `python -m` searches the
current one), so a module kept beside the workflow is found without installing it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from typing import Any

from orjson import JSONEncodeError

from pipeline.core.errors import ConfigError
from pipeline.core.jsonio import dumps
from pipeline.workflow.step_builders import Call
from pipeline.workflow.steps import Workflow


def load_calls(workflow: Workflow) -> dict[str, Call]:
    """Each `call` step's function, by step name; ConfigError naming the step otherwise."""
    calls = {name: step.call for name, step in workflow.steps.items() if step.call is not None}
    if calls:
        for directory in (os.getcwd(), workflow.home):
            if directory is not None and directory not in sys.path:
                sys.path.insert(0, directory)
    return {name: _function(name, spec) for name, spec in calls.items()}


def _function(step: str, spec: str) -> Call:
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import runs the module's code: any error is the user's
        raise ConfigError(
            f"workflow: steps.{step}.call: cannot import {module_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    function: Any = module
    for part in function_name.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        raise ConfigError(
            f"workflow: steps.{step}.call: {module_name!r} has no function {function_name!r}"
        )
    return function  # type: ignore[no-any-return]


def called(function: Call, fields: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The function's output, or (None, why) when it raised: the step failed."""
    try:
        output = function(dict(fields))
        dumps(output)
    except JSONEncodeError as exc:
        return None, f"the function returned what is not JSON: {exc}"
    except Exception as exc:  # the user's code: its failure is the step's, not the run's
        return None, f"the function raised {type(exc).__name__}: {exc}"
    return output, None
