"""`make demo`: the main job on sample_data/, against the built-in simulator, offline.

Starts `sluice sim` on a free loopback port, runs `sluice run` on the sample
reviews exactly as a user would, shows a few results, then runs the file of
deliberately bad lines to show the quarantine. No key and no network needed.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import orjson

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig

SAMPLES = Path("sample_data")
OUT = Path("demo_output")
SYSTEM = "Classify the review as positive, negative or neutral."


def sluice(*args: str) -> int:
    command = [sys.executable, "-m", "cli", *args]
    print("\n$ sluice " + shlex.join(args[:-2]) + " --base-url <simulator>", flush=True)
    return subprocess.call(command)


def first_rows(path: Path, limit: int) -> list[dict]:
    with path.open("rb") as handle:
        return [orjson.loads(line) for _, line in zip(range(limit), handle, strict=False)]


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def main() -> int:
    OUT.mkdir(exist_ok=True)
    # Latency, jitter and a rate limit in its headers, like a real provider; sluice
    # is given no --rpm, so its summary shows the limit it learned.
    provider = SimulatorConfig(rpm=3000, latency=0.05, jitter=0.03, seed=1)
    with BackgroundSimulator(provider) as sim:
        code = sluice(
            "run", str(SAMPLES / "reviews.jsonl"), "-o", str(OUT / "labeled.jsonl"),
            "-m", "sim-chat", "--system", SYSTEM, "--prompt-file", str(SAMPLES / "classify.j2"),
            "-c", "16", "--summary", str(OUT / "summary.json"), "--base-url", sim.base_url,
        )  # fmt: skip
        if code != 0:
            return code
        print("\nFirst results (the simulator answers a label and a digest of the prompt):")
        for row in first_rows(OUT / "labeled.jsonl", 5):
            print(f"  {row['id']}  {row['rating']} stars  ->  {row['output']}")
        code = sluice(
            "run", str(SAMPLES / "bad_lines.jsonl"), "-o", str(OUT / "bad_lines.labeled.jsonl"),
            "-m", "sim-chat", "--prompt-file", str(SAMPLES / "classify.j2"),
            "--max-error-rate", "1", "--base-url", sim.base_url,
        )  # fmt: skip
        if code != 0:
            return code
    print("\nQuarantined lines of bad_lines.jsonl (nothing is dropped silently):")
    for row in first_rows(OUT / "bad_lines.labeled.quarantine.jsonl", 10):
        print(_short(f"  line {row['source']['line']:>2}: {row['error']['message']}"))
    print(f"\nOutputs are in {OUT}/: labeled.jsonl, labeled.quarantine.jsonl, summary.json,")
    print("bad_lines.labeled.jsonl and bad_lines.labeled.quarantine.jsonl.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
