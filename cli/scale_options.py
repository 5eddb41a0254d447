"""The options of `sluice run` (and `retry`, `plan`, `serve`) for jobs bigger than one
process: a shard of the input, and rate limits shared with other processes. See
run_options.py for the conventions.

No `from __future__ import annotations`: Typer reads these aliases from evaluated
annotations.
"""

from typing import Annotated

import typer

from cli.run_options import FILES, TRAFFIC

Shard = Annotated[
    str | None,
    typer.Option(
        metavar="I/N",
        rich_help_panel=FILES,
        help="Do only shard I of N of the input (I counts from 1: 1/3, 2/3, 3/3), with "
        "outputs and state of its own, so N machines or processes share one job; "
        "sluice merge then joins their outputs. The input's batches (--batch-size, the "
        "same for every shard) are dealt out in turn. From a 0-based index such as "
        "JOB_COMPLETION_INDEX: --shard $((INDEX+1))/N.",
        show_envvar=False,
    ),
]

SharedLimits = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=TRAFFIC,
        help="A file in which every sluice process on this host shares one account's rate "
        "limits (per model): several jobs at once stay under the account's limit together. "
        "Give every job the same path; SLUICE_SHARED_LIMITS sets it for all of them.",
        envvar="SLUICE_SHARED_LIMITS",
        show_envvar=True,
    ),
]

EngineName = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="asyncio|ray",
        rich_help_panel=TRAFFIC,
        help="What sends the requests: asyncio, this process (the default); or ray, actors "
        "of a Ray cluster, each sending with its own connections (needs pip install "
        "'sluice\\[ray]'). Reading, the cache look-ups, checkpoints and the outputs stay "
        "in this process, and the outputs are the same either way.",
        show_envvar=False,
    ),
]

RayAddress = Annotated[
    str | None,
    typer.Option(
        metavar="ADDR",
        rich_help_panel=TRAFFIC,
        help="With --engine ray: the cluster to use (ray://head:10001, or auto for the one "
        "`ray start` made on this machine). Default: a Ray instance started on this "
        "machine for the run, bound to 127.0.0.1, and stopped after it. On a cluster, "
        "every node needs sluice installed, the API key's variable set, and --cache-dir "
        "on storage they all reach.",
        envvar="RAY_ADDRESS",
        show_envvar=True,
    ),
]

RayWorkers = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        rich_help_panel=TRAFFIC,
        help="With --engine ray: how many worker actors send (each with --concurrency "
        "requests in flight). Default: one per CPU of the cluster. The rate limits hold "
        "for all of them together.",
        show_envvar=False,
    ),
]
