"""`sluice merge INPUT... -r R1 -r R2 ... -o OUT`: a sharded job's outputs as one run's,
then checked as `sluice verify` checks a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from cli.errors import fail
from pipeline.core.config import STDIO, OutputConfig, ReadConfig
from pipeline.core.errors import SluiceError, UsageError
from pipeline.core.words import counted

if TYPE_CHECKING:
    from pipeline.run.verify import VerifyReport
    from pipeline.write.merge import MergeCounts, MergeJob, ShardOutputs

# The merge and its readers and writers (pyarrow, ijson) are imported when it runs,
# not at every start-up.

MERGE_HELP = (
    "Join the outputs of a job run in shards (sluice run --shard I/N) into one results file "
    "and one quarantine file, in input order, as one run over the whole input would have "
    "written them; then check them as sluice verify does.\n\n"
    "Give the inputs, --id-field and --batch-size as given to the shards, and each shard's "
    "results with -r, shard 1 first. Every file is read once, as a stream. Exit code 0 when "
    "every input item is in exactly one output row; 1 when not, with the ids at fault listed."
)
MERGE_EPILOG = (
    "Example, after sluice run items.jsonl -o part-I.jsonl --shard I/3 for I = 1, 2, 3:\n\n"
    "sluice merge items.jsonl -r part-1.jsonl -r part-2.jsonl -r part-3.jsonl -o all.jsonl"
)


def merge(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="The inputs the shards were given, in the same order: .jsonl, .jsonl.gz, "
            ".json, .parquet, or - for stdin.",
        ),
    ],
    results: Annotated[
        list[str],
        typer.Option(
            "--results",
            "-r",
            metavar="PATH",
            help="One shard's results file (its -o). Repeat it for each shard, in order: "
            "the results of --shard 1/N first, then 2/N, and so on.",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="The merged results: .jsonl, .jsonl.gz or .parquet.",
        ),
    ],
    quarantine: Annotated[
        list[str] | None,
        typer.Option(
            "--quarantine",
            metavar="PATH",
            help="One shard's quarantine file; repeat it for each shard, in the order of "
            "--results. \\[default: each results file's name + .quarantine.jsonl, as "
            "sluice run names it]",
        ),
    ] = None,
    quarantine_out: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            help="The merged quarantine (JSONL). \\[default: OUTPUT's name + .quarantine.jsonl]",
        ),
    ] = None,
    id_field: Annotated[
        str,
        typer.Option(metavar="FIELD", help="Item field holding its id, as given to the shards."),
    ] = "id",
    batch_size: Annotated[
        int,
        typer.Option(
            metavar="N",
            min=1,
            help="The --batch-size the shards ran with: it says which shard did which item.",
        ),
    ] = 50,
    retried: Annotated[
        bool,
        typer.Option(
            "--retried",
            help="The shards were sluice retry runs: the INPUTs are the quarantine files they "
            "sent again.",
        ),
    ] = False,
    where: Annotated[
        str | None,
        typer.Option(
            metavar="EXPR",
            help="The --where the shards were given: the items they left out may be missing "
            "from the results (as --drop-skipped writes them).",
        ),
    ] = None,
    show: Annotated[
        int,
        typer.Option(
            metavar="N", min=0, help="List at most this many ids or rows of each kind of fault."
        ),
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
) -> None:
    from pipeline.prepare.where import compile_where
    from pipeline.run.verify import verify as verify_run
    from pipeline.write.merge import MergeJob, merge_shards

    try:
        selected = compile_where(where) if where is not None else None
        job = MergeJob(
            ReadConfig(tuple(inputs), id_field, batch_size, requeue=retried),
            _shards(results, quarantine),
            _outputs(output, quarantine_out),
        )
        counts = merge_shards(job)
        report = verify_run(
            job.read.inputs,
            [job.output.results],
            [job.output.quarantine],
            id_field,
            show,
            selected,
            requeue=retried,
        )
    except SluiceError as error:
        fail(error)
    if as_json:
        typer.echo(orjson.dumps(_as_dict(job, counts, report), option=orjson.OPT_INDENT_2))
    else:
        typer.echo("\n".join(_lines(job, counts, report)))
    raise typer.Exit(0 if report.ok else 1)


merge.__doc__ = MERGE_HELP


def _outputs(results: str, quarantine: str | None) -> OutputConfig:
    from cli.run_config import default_quarantine_path
    from pipeline.write.merge import check_merged_file

    check_merged_file("--output", results)  # before a quarantine is named after it
    return OutputConfig(results, quarantine or default_quarantine_path(results))


def _shards(results: list[str], quarantines: list[str] | None) -> tuple[ShardOutputs, ...]:
    from cli.run_config import default_quarantine_path
    from pipeline.write.merge import ShardOutputs

    if quarantines and len(quarantines) != len(results):
        raise UsageError(
            f"give one --quarantine for each of the {len(results)} --results, in the same "
            f"order, or none (each then named after its results), not {len(quarantines)}"
        )
    # Stdin is refused as a shard's file by the merge itself, with its own message.
    named = quarantines or [p if p == STDIO else default_quarantine_path(p) for p in results]
    return tuple(ShardOutputs(r, q) for r, q in zip(results, named, strict=True))


def _lines(job: MergeJob, counts: MergeCounts, report: VerifyReport) -> list[str]:
    shards = len(job.shards)
    lines = [
        f"merged {counted(shards, 'shard')} into {job.output.results} and {job.output.quarantine}",
        *report.lines(),
    ]
    if counts.unplaced:
        lines.append(_unplaced(job, counts))
    return lines


def _unplaced(job: MergeJob, counts: MergeCounts) -> str:
    return (
        f"{counted(counts.unplaced, 'row')} of the shards were not where their batches put "
        "them, and are at the end of the merged files: give the shards' results in order "
        f"(1/N first), and the inputs and --batch-size ({job.read.batch_size}) they ran with"
    )


def _as_dict(job: MergeJob, counts: MergeCounts, report: VerifyReport) -> dict[str, Any]:
    return {
        **report.as_dict(),
        "merged": {
            "shards": len(job.shards),
            "results": job.output.results,
            "quarantine": job.output.quarantine,
            "unplaced_rows": counts.unplaced,
        },
    }
