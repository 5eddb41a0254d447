"""`make demo`: the main job on sample_data/, against the built-in simulator, offline.

Starts `sluice sim` on a free loopback port, runs `sluice run` on the sample
reviews exactly as a user would, shows a few results, runs the same command
again to show every answer coming from the cache, then runs the file of
deliberately bad lines to show the quarantine. No key and no network needed.
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
    print(f"\nOutputs are in {OUT}/: labeled.jsonl, labeled.quarantine.jsonl, summary.json,")
    print("bad_lines.labeled.jsonl and bad_lines.labeled.quarantine.jsonl.")
    print(
        "Check the first job: sluice verify sample_data/reviews.jsonl -r demo_output/labeled.jsonl"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
