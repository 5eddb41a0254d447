"""`sluice plan` and `sluice run --dry-run`: the plan printed, nothing sent.

The plan is the command's data, so it goes to stdout (a table, or --json);
exit 0 when every item is valid, 65 when some are not.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
import typer

from cli.entry import start_up_over
from cli.errors import fail, report_internal_error
from pipeline.core.config import RunConfig
from pipeline.core.errors import SluiceError
from pipeline.core.words import money

if TYPE_CHECKING:
    from cli.run_config import RunFlags

PLAN_HELP = (
    "Plan a run without sending anything: read every input, render every request, and "
    "report items, invalid items, answers already cached, requests to send, tokens, cost "
    "and the time the rate limits imply.\n\n"
    "Takes the same options as sluice run (-o is optional: with it, items already done by "
    "an unfinished run are counted too). Exit 0 when every item is valid, 65 when some "
    "are not."
)


def execute_plan(config: RunConfig, flags: RunFlags) -> NoReturn:
    # Imported when a plan is made, not at every start-up: the planner reads, renders
    # and probes as a run does (pyarrow, jinja2, aiohttp).
    import asyncio

    from pipeline.run.plan import EXIT_INVALID_ITEMS, make_plan

    start_up_over()
    try:
        plan = asyncio.run(make_plan(config, flags.show, flags.probe_limits))
    except SluiceError as error:
        fail(error)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as bug:
        report_internal_error(bug)
    if flags.json:
        sys.stdout.write(orjson.dumps(plan, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for request in plan["shown"]:
            sys.stdout.write(orjson.dumps(request).decode() + "\n")
        for line in plan_lines(plan):
            sys.stdout.write(line + "\n")
    sys.stdout.flush()
    raise typer.Exit(EXIT_INVALID_ITEMS if plan["invalid"] else 0)


def plan_lines(plan: dict[str, Any]) -> list[str]:
    invalid = ", ".join(f"{kind} {n:,}" for kind, n in plan["invalid_by_kind"].items())
    done = f", {plan['done']:,} done by an earlier run" if plan["done"] else ""
    twins = f" ({plan['duplicates']:,} identical items share one)" if plan["duplicates"] else ""
    rows = [
        ("items", f"{plan['items']:,}{done}"),
        ("invalid", f"{plan['invalid']:,}" + (f" ({invalid})" if invalid else "")),
    ]
    if plan["skipped_by_where"]:
        rows.append(("skipped", f"{plan['skipped_by_where']:,} left out by --where, not sent"))
    rows += [
        ("cached", f"{plan['cached']:,} answered by the cache"),
        ("requests", f"{plan['requests']:,} to send{twins}"),
        *[(f"  {name}", _step(step)) for name, step in plan.get("steps", {}).items()],
        ("tokens", _tokens(plan)),
        ("cost", _cost(plan)),
        ("time", _time(plan)),
    ]
    if plan["state_differs"]:
        rows.append(("state", "holds a different job: the run would refuse it (add --fresh)"))
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


def _step(step: dict[str, Any]) -> str:
    """One workflow step's line: what it sends, or at most how many items reach it."""
    model = step["model"] or "a function"
    if step["requests"] is None:
        return (
            f"up to {step['requests_at_most']:,} ({model}; its prompts hold earlier steps' "
            "answers, so it is counted and priced during the run)"
        )
    parts = [f"{step['requests']:,} to send ({model})", f"{step['cached']:,} cached"]
    if step["skipped_by_when"]:
        parts.append(f"{step['skipped_by_when']:,} skipped by its when")
    if step["cost_usd"] is not None:
        parts.append(f"about {money(step['cost_usd'])}")
    return ", ".join(parts)


def _tokens(plan: dict[str, Any]) -> str:
    ceiling = plan["max_completion_tokens"]
    most = "unbounded (no --max-tokens)" if ceiling is None else f"at most {ceiling:,}"
    return (
        f"{plan['prompt_tokens']:,} prompt (estimated); completion {most}, expected "
        f"{plan['expected_completion_tokens']:,} ({plan['completion_basis']})"
    )


def _cost(plan: dict[str, Any]) -> str:
    if plan["cost_usd"] is None:
        return "unpriced: the price table does not list the model (give --price-in/--price-out)"
    line = f"about {money(plan['cost_usd'])}"
    if plan["max_cost_usd"] is not None:
        line += f", at most {money(plan['max_cost_usd'])}"
    source = plan["price"]["source"] if plan["price"] else "the steps' models"
    if plan.get("steps") and any(step["cost_usd"] is None for step in plan["steps"].values()):
        source += "; steps that read earlier answers are not included"
    return line + f" ({source})"


def _time(plan: dict[str, Any]) -> str:
    limits = plan["limits"]
    if plan["seconds"] is None:
        if limits["source"].startswith("probe"):  # asked, and the server did not say
            return f"unknown: {limits['source']} (give --rpm/--tpm)"
        return "unknown: no rate limits known (give --rpm/--tpm, or --probe-limits)"
    known = [f"{limits[k]:,.0f} {k}" for k in ("rpm", "tpm") if limits[k]]
    basis = ", ".join(known) or f"concurrency {plan['concurrency']}"
    return f"at least {_duration(plan['seconds'])} ({basis}; limits: {limits['source']})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
