"""`sluice status STATE_DIR`: how far a running or stopped run has got."""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from cli.errors import fail
from cli.option_values import parse_shard
from pipeline.core.errors import InputMissing, SluiceError
from pipeline.core.words import counted, money

if TYPE_CHECKING:
    from pipeline.state.parts import Damage
    from pipeline.state.store import Totals

# The state store and the input readers (pyarrow, ijson) are imported when status runs,
# not at every start-up.


def status(
    state_dir: Annotated[
        Path,
        typer.Argument(
            help="A run's state directory: .OUTPUT.sluice beside its output, or its --state-dir."
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
) -> None:
    """Show a run's progress: whether it is running, batches and items committed, failures,
    and when it last committed. Reads only; safe while the run goes on."""
    from pipeline.state.store import FINGERPRINT_NAME

    directory = str(state_dir)
    if not os.path.isfile(os.path.join(directory, FINGERPRINT_NAME)):
        fail(InputMissing(f"{directory} is not a sluice state directory (or the run finished)"))
    try:
        report = _report(directory)
    except SluiceError as error:
        fail(error)
    typer.echo(
        orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if as_json else _text(report)
    )


def _report(directory: str) -> dict[str, Any]:
    from pipeline.state.lock import current_holder
    from pipeline.state.store import read_state

    stored = read_state(directory)
    fingerprint, totals = stored.fingerprint, stored.totals
    holder = current_holder(directory)
    inputs = [entry.get("path") for entry in (fingerprint or {}).get("inputs", [])]
    return {
        "state_dir": os.path.abspath(directory),
        "running": holder is not None,
        "pid": holder.pid if holder else None,
        "started": holder.started if holder else None,
        "inputs": inputs,
        "model": (fingerprint or {}).get("model"),
        "shard": (fingerprint or {}).get("shard"),  # "2/3" for --shard 2/3, else None
        "input_items": _input_items(inputs, fingerprint or {}),
        **_committed(totals),
        "last_commit": totals.last_commit,
        "damaged": _damaged(stored.damage),
        "spent": _spent(directory),
    }


def _spent(directory: str) -> dict[str, Any] | None:
    """What the job's attempts spent, as its budgets count it (None: nothing recorded)."""
    from pipeline.state.spent import read_spent

    spent = read_spent(directory)
    if spent is None:
        return None
    return {**spent.as_dict(), "cost_usd": spent.cost}


def _damaged(damage: Damage | None) -> dict[str, Any] | None:
    """The first damaged part, where the committed prefix ends; the next run redoes it."""
    if damage is None:
        return None
    return {"path": damage.path, "reason": damage.reason, "redo_from_batch": damage.batch}


def _committed(totals: Totals) -> dict[str, Any]:
    return {
        "batches": totals.batches,
        "items": totals.items,
        "succeeded": totals.succeeded,
        "cached": totals.cached,
        "quarantined": sum(totals.quarantined.values()),
        "quarantined_by_kind": dict(sorted(totals.quarantined.items())),
        "skipped_by_where": totals.skipped,
        "tokens": {"prompt": totals.prompt_tokens, "completion": totals.completion_tokens},
    }


def _input_items(inputs: list[Any], fingerprint: dict[str, Any]) -> int | None:
    """The job's size (a shard's share of the input), when counting it is cheap (not for
    stdin or gzip)."""
    if not inputs or not all(isinstance(path, str) and os.path.isfile(path) for path in inputs):
        return None
    from pipeline.prepare.batching import shard_share
    from pipeline.read.sources import count_items

    with contextlib.suppress(OSError, SluiceError, ValueError, TypeError, KeyError):
        total = count_items(inputs)
        shard = fingerprint.get("shard")
        if total is None or not isinstance(shard, str):
            return total
        return shard_share(total, int(fingerprint["batch_size"]), parse_shard(shard))
    return None


def _text(report: dict[str, Any]) -> str:
    total = report["input_items"]
    share = f" of {total:,} ({report['items'] / total:.0%})" if total else ""
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in report["quarantined_by_kind"].items())
    model = report["model"] or "(named by the lines)"
    lines = [
        f"state:       {report['state_dir']}",
        f"job:         {', '.join(report['inputs'])} with model {model}"
        + (f", shard {report['shard']}" if report["shard"] else ""),
        f"run:         {_running(report)}",
        f"committed:   {counted(report['items'], 'item')}{share} in "
        f"{counted(report['batches'], 'batch')}",
        f"             {report['succeeded']:,} ok ({report['cached']:,} from the cache), "
        + (
            f"{report['skipped_by_where']:,} skipped by --where, "
            if report["skipped_by_where"]
            else ""
        )
        + f"{report['quarantined']:,} quarantined"
        + (f" ({kinds})" if kinds else ""),
        f"tokens:      {report['tokens']['prompt']:,} in, {report['tokens']['completion']:,} out",
        f"last commit: {_ago(report['last_commit'])}",
    ]
    if spent := report["spent"]:
        cost = "cost unknown (unpriced)" if spent["cost_usd"] is None else money(spent["cost_usd"])
        lines.append(
            f"spent:       {counted(spent['requests'], 'request')}, {cost}, "
            f"{spent['seconds']:,.1f}s of running (what --max-cost, --max-requests and "
            "--deadline count)"
        )
    if damaged := report["damaged"]:
        lines.append(
            f"damaged:     {damaged['path']} ({damaged['reason']}); "
            f"the next run redoes the batches from {damaged['redo_from_batch']:,} on"
        )
    return "\n".join(lines)


def _running(report: dict[str, Any]) -> str:
    if not report["running"]:
        return "stopped; run the same command again to resume"
    started = f", started {_ago(report['started'])}" if report["started"] else ""
    return f"running (pid {report['pid']}{started})"


def _ago(timestamp: float | None) -> str:
    if timestamp is None:
        return "none yet"
    when = datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    seconds = max(0, int(time.time() - timestamp))
    return (
        f"{when} ({seconds // 60}m {seconds % 60}s ago)"
        if seconds >= 60
        else f"{when} ({seconds}s ago)"
    )
