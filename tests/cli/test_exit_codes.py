"""Exit codes as documented: each user mistake is one line on stderr, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import read_jsonl, run_cli, write_jsonl


def _args(source: str, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "run",
        source,
        "-o",
        str(out),
        "-m",
        "sim-chat",
        "-p",
        "{{ text }}",
        "--base-url",
        base_url,
        *extra,
    ]


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output + result.stderr


def _no_files_but(directory: Path, *names: str) -> None:
    assert sorted(os.listdir(directory)) == sorted(names)


def test_exit_1_when_quarantined_items_exceed_the_allowed_rate(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"other": "b"}, {"text": "c"}])
    failing = run_cli(
        _args(source, tmp_path / "out.jsonl", sim.base_url, "--max-error-rate", "0.3")
    )
    assert failing.exit_code == 1
    assert "--max-error-rate" in failing.stderr
    allowed = run_cli(
        _args(source, tmp_path / "out.jsonl", sim.base_url, "--max-error-rate", "0.34")
    )
    assert allowed.exit_code == 0


def test_exit_2_for_usage_errors(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    assert run_cli(_args(source, tmp_path / "o.jsonl", sim.base_url, "-c", "0")).exit_code == 2
    assert run_cli(["run", source]).exit_code == 2  # no --output
    both = run_cli(_args(source, tmp_path / "o.jsonl", sim.base_url, "--prompt-file", source))
    assert both.exit_code == 2 and "not both" in both.stderr
    same = run_cli(_args(source, Path(source), sim.base_url))
    assert same.exit_code == 2 and "also an input" in same.stderr
    bad_option = run_cli(_args(source, tmp_path / "o.jsonl", sim.base_url, "-O", "novalue"))
    assert bad_option.exit_code == 2 and "key=value" in bad_option.stderr
    streaming = run_cli(_args(source, tmp_path / "o.jsonl", sim.base_url, "-O", "stream=true"))
    assert streaming.exit_code == 2 and "not allowed" in streaming.stderr
    unknown = run_cli(_args(str(tmp_path / "data.csv"), tmp_path / "o.jsonl", sim.base_url))
    assert unknown.exit_code == 2
    csv_out = run_cli(_args(source, tmp_path / "o.csv", sim.base_url))
    assert csv_out.exit_code == 2 and "o.csv" in csv_out.stderr
    _no_traceback(unknown)


def test_exit_65_for_an_input_unreadable_as_a_whole(sim, tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\0" * 64)
    result = run_cli(_args(str(broken), tmp_path / "out.jsonl", sim.base_url))
    assert result.exit_code == 65
    assert "broken.parquet" in result.stderr
    _no_traceback(result)
    _no_files_but(tmp_path, "broken.parquet")


def test_exit_66_for_a_missing_input(sim, tmp_path: Path) -> None:
    result = run_cli(_args(str(tmp_path / "nope.jsonl"), tmp_path / "out.jsonl", sim.base_url))
    assert result.exit_code == 66
    assert "nope.jsonl" in result.stderr and "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # the error, nothing else
    _no_traceback(result)


def test_exit_73_when_the_state_directory_is_a_file(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    (tmp_path / "state").write_text("not a directory")
    args = _args(
        source, tmp_path / "out.jsonl", sim.base_url, "--state-dir", str(tmp_path / "state")
    )
    result = run_cli(args)
    assert result.exit_code == 73
    assert "is a file" in result.stderr
    _no_traceback(result)


def test_exit_73_when_outputs_cannot_be_written(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    result = run_cli(_args(source, tmp_path / "no-such-dir" / "out.jsonl", sim.base_url))
    assert result.exit_code == 73
    _no_traceback(result)


def test_exit_77_on_a_refused_key_with_no_output_written(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{n}"} for n in range(200)])
    previous = tmp_path / "out.jsonl"
    previous.write_text("yesterday's results\n")
    with BackgroundSimulator(SimulatorConfig(require_key="sk-right-key-000000")) as keyed:
        result = run_cli(
            _args(source, previous, keyed.base_url, "-c", "4"),
            env={"OPENAI_API_KEY": "sk-wrong-key-999999"},
        )
        stats = keyed.stats()
    assert result.exit_code == 77
    assert "refused the API key" in result.stderr
    assert "sk-wrong-key-999999" not in result.stderr
    assert stats.requests_total <= 4  # at most the requests already in flight
    assert previous.read_text() == "yesterday's results\n"
    _no_files_but(tmp_path, "in.jsonl", "out.jsonl")


def test_exit_75_when_the_quota_is_exhausted(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{n}"} for n in range(50)])
    with BackgroundSimulator(SimulatorConfig(quota_requests=10)) as limited:
        result = run_cli(_args(source, tmp_path / "out.jsonl", limited.base_url, "-c", "2"))
    assert result.exit_code == 75
    assert "quota" in result.stderr
    _no_files_but(tmp_path, "in.jsonl")


def test_exit_75_when_the_server_asks_for_hours(tmp_path: Path) -> None:
    rows = [{"text": "spent [[sim:429_long]]"}, {"text": "fine"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    with BackgroundSimulator() as server:
        result = run_cli(_args(source, tmp_path / "out.jsonl", server.base_url))
    assert result.exit_code == 75
    assert "asks to wait 7,200s" in result.stderr
    _no_files_but(tmp_path, "in.jsonl")


def test_exit_69_when_the_endpoint_stays_down_past_the_breaker_timeout(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{n}"} for n in range(100)])
    with BackgroundSimulator(SimulatorConfig(fail_rate=1.0)) as down:
        result = run_cli(
            _args(source, tmp_path / "out.jsonl", down.base_url, "--breaker-timeout", "1")
        )
        stats = down.stats()
    assert result.exit_code == 69, result.output
    assert "--breaker-timeout" in result.stderr
    _no_traceback(result)
    # Items wait while the breaker is open instead of burning their retries, so
    # far fewer requests are made than 100 items x 6 attempts.
    assert stats.requests_total < 100
    _no_files_but(tmp_path, "in.jsonl")


LOCAL = "local simulator"


@pytest.mark.parametrize(
    ("base_url", "flags", "key", "message"),
    [
        (LOCAL, ["-p", "{{ txt }}"], None, "'txt' is undefined"),
        (LOCAL, ["-p", "{{ text"], None, "not valid Jinja2"),
        ("https://api.example.com/v1", [], None, "OPENAI_API_KEY"),
        ("http://api.example.com/v1", [], "sk-x", "plain http"),
        ("https://u:p@api.example.com/v1", [], "sk-x", "user name or password"),
    ],
)
def test_exit_78_for_configuration_errors(sim, tmp_path: Path, base_url, flags, key, message):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"text": "b"}])
    url = sim.base_url if base_url == LOCAL else base_url
    args = ["run", source, "-o", str(tmp_path / "o.jsonl"), "-m", "m", "--base-url", url, *flags]
    result = run_cli(args, env={"OPENAI_API_KEY": key})
    assert result.exit_code == 78
    assert message in result.stderr
    _no_traceback(result)
    _no_files_but(tmp_path, "in.jsonl")


def test_a_template_that_fits_no_item_names_the_fields_items_have(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "rating": 5}])
    result = run_cli(_args(source, tmp_path / "o.jsonl", sim.base_url, "-p", "{{ txt }}"))
    assert result.exit_code == 78
    assert "the items have the fields: rating, text" in result.stderr


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_cleanly_without_a_half_written_output(tmp_path: Path, signum, code) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{n}"} for n in range(10_000)])
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as slow:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                *_args(source, tmp_path / "out.jsonl", slow.base_url, "-c", "4"),
            ],
            stderr=subprocess.PIPE,
            env={**os.environ, "OPENAI_API_KEY": ""},
        )
        assert process.stderr is not None
        # The plain progress line is printed only once requests are flowing.
        _wait_until_running(slow)
        process.send_signal(signum)
        stderr = process.communicate(timeout=30)[1].decode()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    # What completed may be committed in the state directory, never under a final name.
    assert set(os.listdir(tmp_path)) <= {"in.jsonl", ".out.jsonl.sluice"}


def test_a_kill_never_leaves_a_file_under_a_final_name(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{n}"} for n in range(10_000)])
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as slow:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", *_args(source, tmp_path / "out.jsonl", slow.base_url)],
            stderr=subprocess.DEVNULL,
            env={**os.environ, "OPENAI_API_KEY": ""},
        )
        _wait_until_running(slow)
        process.kill()
        process.wait(timeout=30)
    left = sorted(os.listdir(tmp_path))
    assert "out.jsonl" not in left and "out.quarantine.jsonl" not in left
    # Only the state directory and hidden temp files remain; never a final name.
    assert all(
        name in ("in.jsonl", ".out.jsonl.sluice") or name.endswith(".partial") for name in left
    )


def _wait_until_running(simulator: BackgroundSimulator) -> None:
    deadline = time.monotonic() + 20
    while simulator.stats().requests_total < 8:
        assert time.monotonic() < deadline, "sluice never started sending"
        time.sleep(0.02)


def test_summary_file_matches_the_outputs(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"nope": 1}, {"text": "c"}])
    summary_path = tmp_path / "summary.json"
    result = run_cli(
        _args(source, tmp_path / "out.jsonl", sim.base_url, "--summary", str(summary_path))
    )
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["exit_code"] == result.exit_code == 1
    assert summary["succeeded"] == len(read_jsonl(tmp_path / "out.jsonl")) == 2
    assert summary["quarantined"] == len(read_jsonl(tmp_path / "out.quarantine.jsonl")) == 1
    assert summary["quarantined_by_kind"] == {"invalid_input": 1}


def test_a_summary_that_cannot_be_written_is_exit_73(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    summary = tmp_path / "missing" / "summary.json"
    result = run_cli(_args(source, tmp_path / "out.jsonl", sim.base_url, "--summary", str(summary)))
    assert result.exit_code == 73
    assert "directory" in result.stderr
    _no_traceback(result)
    _no_files_but(tmp_path, "in.jsonl")


def test_quarantine_must_not_overwrite_the_output(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    out = str(tmp_path / "out.jsonl")
    result = run_cli(_args(source, Path(out), sim.base_url, "--quarantine", out))
    assert result.exit_code == 2
    assert "must differ" in result.stderr


def test_an_empty_input_gives_empty_outputs_and_exit_0(sim, tmp_path: Path) -> None:
    source = tmp_path / "empty.jsonl"
    source.write_bytes(b"")
    result = run_cli(_args(str(source), tmp_path / "out.jsonl", sim.base_url))
    assert result.exit_code == 0
    assert read_jsonl(tmp_path / "out.jsonl") == []
    assert read_jsonl(tmp_path / "out.quarantine.jsonl") == []


def test_a_key_given_where_its_variable_name_belongs_is_never_echoed(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    pasted = "sk-proj-pasted-by-mistake-123456"
    result = run_cli(_args(source, tmp_path / "out.jsonl", sim.base_url, "--api-key-env", pasted))
    assert result.exit_code == 78
    assert "name of an environment variable" in result.stderr
    assert pasted not in result.output + result.stderr


def test_a_key_with_a_newline_is_refused_before_any_request(sim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}])
    result = run_cli(
        _args(source, tmp_path / "out.jsonl", sim.base_url), env={"OPENAI_API_KEY": "sk-a\nX: y"}
    )
    assert result.exit_code == 78
    assert "control characters" in result.stderr and "sk-a" not in result.stderr


def test_sim_exits_69_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["sim", "--port", str(port)])
    assert result.exit_code == 69
    assert "cannot listen" in result.stderr
    _no_traceback(result)
