"""`make demo`: the main job on sample_data/, against the built-in simulator, offline.

Starts `sluice sim` on a free loopback port, runs `sluice run` on the sample
reviews exactly as a user would, shows a few results, runs the same command
again to show every answer coming from the cache, runs the file of
deliberately bad lines to show the quarantine, then a two-step workflow (label
every review, draft a reply to the negative ones) and a reduce of its results
to the themes of each label. No key and no network needed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig

SAMPLES = Path("sample_data")
OUT = Path("demo_output")
CACHE = OUT / "cache"  # the demo's own, so each demo starts with an empty cache
SYSTEM = "Classify the review as positive, negative or neutral."


def sluice(*args: str) -> int:
    command = [sys.executable, "-m", "cli", *args]
    print("\n$ sluice " + shlex.join(args[:-2]) + " --base-url <simulator>", flush=True)
    return subprocess.call(command)


def first_rows(path: Path, limit: int) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return [orjson.loads(line) for _, line in zip(range(limit), handle, strict=False)]


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def main() -> int:
    OUT.mkdir(exist_ok=True)
    shutil.rmtree(CACHE, ignore_errors=True)
    # Latency, jitter and a rate limit in its headers, like a real provider; sluice
    # is given no --rpm, so its summary shows the limit it learned.
    provider = SimulatorConfig(rpm=3000, latency=0.05, jitter=0.03, seed=1)
    with BackgroundSimulator(provider) as sim:
        label = (
            "run", str(SAMPLES / "reviews.jsonl"), "-o", str(OUT / "labeled.jsonl"),
            "-m", "sim-chat", "--system", SYSTEM, "--prompt-file", str(SAMPLES / "classify.j2"),
            "-c", "16", "--cache-dir", str(CACHE), "--summary", str(OUT / "summary.json"),
            "--base-url", sim.base_url,
        )  # fmt: skip
        if code := sluice(*label):
            return code
        print("\nFirst results (the simulator answers a label and a digest of the prompt):")
        for row in first_rows(OUT / "labeled.jsonl", 5):
            print(f"  {row['id']}  {row['rating']} stars  ->  {row['output']}")
        print("\nThe same command again: every answer is already paid for, so none is requested.")
        if code := sluice(*label):
            return code
        code = sluice(
            "run", str(SAMPLES / "bad_lines.jsonl"), "-o", str(OUT / "bad_lines.labeled.jsonl"),
            "-m", "sim-chat", "--prompt-file", str(SAMPLES / "classify.j2"),
            "--max-error-rate", "1", "--cache-dir", str(CACHE), "--base-url", sim.base_url,
        )  # fmt: skip
        if code != 0:
            return code
        print("\nQuarantined lines of bad_lines.jsonl (nothing is dropped silently):")
        for row in first_rows(OUT / "bad_lines.labeled.quarantine.jsonl", 10):
            print(_short(f"  line {row['source']['line']:>2}: {row['error']['message']}"))
        if code := workflow_and_reduce(sim.base_url):
            return code
    print(f"\nOutputs are in {OUT}/: labeled.jsonl, labeled.quarantine.jsonl, summary.json,")
    print("bad_lines.labeled.jsonl, bad_lines.labeled.quarantine.jsonl, replies.jsonl and")
    print("themes.jsonl.")
    print(
        "Check the first job: sluice verify sample_data/reviews.jsonl -r demo_output/labeled.jsonl"
    )
    return 0


def workflow_and_reduce(base_url: str) -> int:
    """Two steps per review, then the themes of each label (see the README's Workflows)."""
    print("\nA workflow: label every review, draft a reply only to the negative ones.")
    code = sluice(
        "run", str(SAMPLES / "reviews.jsonl"), "-o", str(OUT / "replies.jsonl"),
        "-m", "sim-chat", "--workflow", str(SAMPLES / "review_workflow.toml"), "-q",
        "--cache-dir", str(CACHE), "--base-url", base_url,
    )  # fmt: skip
    if code != 0:
        return code
    for row in first_rows(OUT / "replies.jsonl", 6):
        label, reply = row["output"]["label"]["label"], row["output"]["reply"]
        print(_short(f"  {row['id']}  {label:<8}  reply: {reply or '(none: ' + label + ')'}"))
    print("\nA reduce: the themes of each label, in chunks, then the chunks' answers again.")
    code = sluice(
        "reduce", str(OUT / "replies.jsonl"), "-o", str(OUT / "themes.jsonl"),
        "--group-by", "output.label.label", "--prompt-file", str(SAMPLES / "themes.j2"),
        "-m", "sim-chat", "--max-input-tokens", "3000", "--cache-dir", str(CACHE),
        "--base-url", base_url,
    )  # fmt: skip
    for row in first_rows(OUT / "themes.jsonl", 5):
        reviews = f"{row['rows']:>3} reviews, {row['levels']} levels"
        print(f"  {row['group']:<8}  {reviews}: {row['output']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
