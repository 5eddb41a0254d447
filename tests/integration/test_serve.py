"""`sluice serve` as a real process against the simulator, over HTTP on 127.0.0.1: the
synchronous answer, jobs polled to the end, tokens, requests refused before spending,
a kill -9 in the middle of a job, SIGTERM, and many jobs on one account's limits."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import orjson

from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import run_cli
from tests.integration.test_serve_webhooks import RawReceiver, header, verified
from tests.serve_process import ServeProcess


def _items(count: int, prefix: str = "item") -> list[dict]:
    return [{"id": f"{prefix}-{n:05d}", "text": f"{prefix} text number {n}"} for n in range(count)]


def _wait_for_requests(sim: BackgroundSimulator, count: int) -> None:
    """Until the simulator has seen `count` requests: the job is under way."""
    deadline = time.monotonic() + 60
    while sim.stats().requests_total < count:
        assert time.monotonic() < deadline, f"fewer than {count} requests in a minute"
        time.sleep(0.01)


def _ndjson_ids(payload: bytes) -> list[str]:
    return [orjson.loads(line)["id"] for line in payload.splitlines() if line.strip()]


def test_five_items_are_answered_synchronously_in_input_order(tmp_path: Path) -> None:
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url) as server,
    ):
        status, answer = server.call("POST", "/v1/process", {"items": _items(5)})
        metrics = server.call("GET", "/metrics")[1].decode()
    assert status == 200, answer
    assert 'sluice_serve_jobs{status="succeeded"} 1.0' in metrics
    assert 'sluice_serve_items_total{status="ok"} 5.0' in metrics
    assert answer["status"] == "succeeded"
    assert [row["id"] for row in answer["results"]] == [f"item-{n:05d}" for n in range(5)]
    assert all(row["output"] for row in answer["results"])
    assert answer["quarantine"] == []
    assert answer["counts"]["succeeded"] == 5


def test_a_slow_synchronous_request_becomes_a_job_instead_of_a_timeout(tmp_path: Path) -> None:
    with (
        BackgroundSimulator(SimulatorConfig(latency=2.0)) as sim,
        ServeProcess(tmp_path, sim.base_url, "--sync-timeout", "0.2") as server,
    ):
        status, answer = server.call("POST", "/v1/process", {"items": _items(2)})
        assert status == 202
        assert server.wait_for(answer["id"])["status"] == "succeeded"


def test_a_two_thousand_item_job_polled_to_completion_has_every_item_once_in_order(
    tmp_path: Path,
) -> None:
    items = _items(2000)
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url) as server,
    ):
        status, accepted = server.call("POST", "/v1/jobs", {"items": items})
        assert status == 202, accepted
        job = server.wait_for(accepted["id"])
        assert job["status"] == "succeeded"
        status, results = server.call("GET", f"/v1/jobs/{accepted['id']}/results")
        assert status == 200
        status, listed = server.call("GET", "/v1/jobs")
    assert _ndjson_ids(results) == [item["id"] for item in items]
    assert job["counts"]["succeeded"] == 2000
    assert [entry["id"] for entry in listed["jobs"]] == [accepted["id"]]


def test_ndjson_items_stream_to_a_job_with_options_in_the_query(tmp_path: Path) -> None:
    body = b"".join(f'{{"id": {n}, "text": "t{n}"}}\n'.encode() for n in range(30))
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url) as server,
    ):
        path = "/v1/jobs?max_tokens=5&prompt=Summary%3A%20%7B%7B%20text%20%7D%7D"
        status, accepted = server.call("POST", path, raw=body, content_type="application/x-ndjson")
        assert status == 202, accepted
        assert server.wait_for(accepted["id"])["counts"]["succeeded"] == 30
        assert sim.stats().times_requested([{"role": "user", "content": "Summary: t7"}]) == 1


def test_a_request_without_a_valid_token_gets_401(tmp_path: Path) -> None:
    env = {"SLUICE_SERVE_TOKENS": "first-token, second-token"}
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url, env=env) as server,
    ):
        assert server.call("GET", "/v1/jobs")[0] == 401
        assert server.call("GET", "/v1/jobs", token="wrong-token")[0] == 401
        assert server.call("POST", "/v1/process", {"items": _items(1)})[0] == 401
        assert server.call("GET", "/v1/jobs", token="second-token")[0] == 200
        assert server.call("GET", "/healthz")[0] == 200  # for load balancers, no token
        assert sim.stats().requests_total == 0


def test_a_tokens_file_of_hashes_made_by_hash_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    made = run_cli(["serve", "hash-token", "--tokens-file", str(tokens)], stdin=b"my-token\n")
    assert made.exit_code == 0, made.output
    assert "my-token" not in tokens.read_text()
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path / "data", sim.base_url, "--tokens-file", str(tokens)) as server,
    ):
        assert server.call("GET", "/v1/jobs")[0] == 401
        assert server.call("GET", "/v1/jobs", token="my-token")[0] == 200


def test_serving_beyond_loopback_without_tokens_is_refused(tmp_path: Path) -> None:
    result = run_cli(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "without tokens" in result.output


def test_bad_requests_are_refused_before_anything_is_spent(tmp_path: Path) -> None:
    too_large = {"items": [{"text": "x" * 1000}] * 200}
    cases = [
        (b"{not json", 400, "invalid_request"),
        ({"items": _items(2), "colour": "red"}, 400, "unknown_option"),
        ({"items": _items(2), "max_tokens": "many"}, 422, "invalid_option"),
        ({"items": _items(2), "prompt": "{{ missing }}"}, 422, "invalid_template"),
        ({"items": _items(2), "workflow": {"steps": {"a": {"prompt_file": "/etc/x"}}}}, 422, None),
        ({"items": _items(2), "webhook_url": "http://10.0.0.1/hook"}, 422, "invalid_option"),
        ({"items": _items(11)}, 413, "too_many_items"),
        (too_large, 413, "too_large"),
    ]
    extra = ("--max-items-per-job", "10", "--max-body-size", "100kB")
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url, *extra) as server,
    ):
        for body, status, kind in cases:
            raw = body if isinstance(body, bytes) else None
            got, answer = server.call("POST", "/v1/jobs", None if raw else body, raw=raw)
            assert got == status, (body if raw else list(body), answer)
            if kind is not None:
                assert answer["error"]["type"] == kind, answer
        assert sim.stats().requests_total == 0
        assert server.call("GET", "/v1/jobs")[1]["jobs"] == []  # nothing was kept


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    extra = ("--max-queued-jobs", "1", "--max-running-jobs", "1")
    with (
        BackgroundSimulator(SimulatorConfig(latency=1.0)) as sim,
        ServeProcess(tmp_path, sim.base_url, *extra) as server,
    ):
        statuses = [server.call("POST", "/v1/jobs", {"items": _items(3)})[0] for _ in range(4)]
        assert statuses[:2] == [202, 202]  # one running, one queued
        assert 429 in statuses[2:]


def test_a_cancelled_job_sends_nothing_new(tmp_path: Path) -> None:
    with (
        BackgroundSimulator(SimulatorConfig(latency=0.2)) as sim,
        ServeProcess(tmp_path, sim.base_url, "-c", "2") as server,
    ):
        _, accepted = server.call("POST", "/v1/jobs", {"items": _items(200)})
        _wait_for_requests(sim, 4)
        status, _ = server.call("DELETE", f"/v1/jobs/{accepted['id']}")
        assert status == 200
        job = server.wait_for(accepted["id"])
        sent = sim.stats().requests_total
        time.sleep(0.5)  # had it gone on sending, the simulator would count more by now
        assert sim.stats().requests_total == sent
    assert job["status"] == "cancelled"
    assert sent < 200


def test_a_server_killed_mid_job_finishes_it_exactly_once_after_a_restart(
    tmp_path: Path,
) -> None:
    items = _items(600)
    with BackgroundSimulator(SimulatorConfig(latency=0.02, seed=4)) as sim:
        server = ServeProcess(tmp_path, sim.base_url, "-c", "8").start()
        _, accepted = server.call("POST", "/v1/jobs", {"items": items})
        _wait_for_requests(sim, 150)
        server.kill()
        with server.start():
            job = server.wait_for(accepted["id"])
            _, results = server.call("GET", f"/v1/jobs/{accepted['id']}/results")
        paid_twice = sum(n - 1 for n in sim.stats().requests_by_digest.values() if n > 1)
    assert job["status"] == "succeeded"
    assert _ndjson_ids(results) == [item["id"] for item in items]
    assert paid_twice <= 8  # only what was on the wire at the kill


def test_sigterm_lets_requests_land_and_the_job_resumes_at_the_next_start(
    tmp_path: Path,
) -> None:
    items = _items(300)
    with BackgroundSimulator(SimulatorConfig(latency=0.05)) as sim:
        server = ServeProcess(tmp_path, sim.base_url, "-c", "4").start()
        _, accepted = server.call("POST", "/v1/jobs", {"items": items})
        _wait_for_requests(sim, 40)
        assert server.terminate() == 0
        assert any("stopped" in line for line in server.lines)
        with server.start():
            job = server.wait_for(accepted["id"])
            _, results = server.call("GET", f"/v1/jobs/{accepted['id']}/results")
        paid_twice = sum(n - 1 for n in sim.stats().requests_by_digest.values() if n > 1)
    assert job["status"] == "succeeded"
    assert _ndjson_ids(results) == [item["id"] for item in items]
    assert paid_twice == 0  # everything on the wire landed and was kept


def test_ten_concurrent_jobs_share_one_accounts_limit(tmp_path: Path) -> None:
    config = SimulatorConfig(rpm=1200, latency=0.01)
    with (
        BackgroundSimulator(config) as sim,
        ServeProcess(tmp_path, sim.base_url, "--max-running-jobs", "10") as server,
    ):
        ids = [
            server.call("POST", "/v1/jobs", {"items": _items(40, f"job{j}")})[1]["id"]
            for j in range(10)
        ]
        jobs = [server.wait_for(job_id) for job_id in ids]
        stats = sim.stats()
    assert all(job["status"] == "succeeded" for job in jobs)
    assert stats.requests_total - stats.rate_limited == 400
    assert stats.rate_limited <= 5  # a handful at most, never a storm


def test_a_finished_job_is_announced_by_a_signed_webhook_retried_after_a_500(
    tmp_path: Path,
) -> None:
    secret = "whsec_" + base64.b64encode(b"the test's webhook secret").decode()
    env = {"SLUICE_WEBHOOK_SECRET": secret}
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        RawReceiver(answers=[500]) as receiver,
        ServeProcess(tmp_path, sim.base_url, "--webhook-allow", "127.0.0.1", env=env) as server,
    ):
        job = {"items": _items(3), "webhook_url": receiver.url}
        _, accepted = server.call("POST", "/v1/jobs", job)
        deadline = time.monotonic() + 30
        while len(receiver.posts) < 2:
            assert time.monotonic() < deadline, "the webhook was not retried"
            time.sleep(0.02)
        _, status = server.call("GET", f"/v1/jobs/{accepted['id']}")
    first, second = receiver.posts[:2]
    assert first == second == {"type": "job.finished", "data": status}
    ids = {header(headers, "webhook-id") for headers in receiver.headers}
    assert len(ids) == 1  # the same id on every attempt: receivers de-duplicate by it
    for headers, body in zip(receiver.headers, receiver.bodies, strict=True):
        assert verified(b"the test's webhook secret", headers, body)


def test_a_second_server_on_the_same_data_dir_is_turned_away(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig()) as sim, ServeProcess(tmp_path, sim.base_url):
        args = ["serve", "--port", "0", "--data-dir", str(tmp_path), "--base-url", sim.base_url]
        second = run_cli(args)
    assert second.exit_code == 75
    assert "a --data-dir of its own" in second.output


def test_finished_jobs_are_deleted_after_the_retention(tmp_path: Path) -> None:
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url, "--retention", "1s") as server,
    ):
        _, accepted = server.call("POST", "/v1/jobs", {"items": _items(2)})
        server.wait_for(accepted["id"])
        deadline = time.monotonic() + 30
        while server.call("GET", f"/v1/jobs/{accepted['id']}")[0] != 404:
            assert time.monotonic() < deadline, "the finished job was kept past its retention"
            time.sleep(0.1)
    assert not (tmp_path / "jobs" / accepted["id"]).exists()


def test_readyz_says_when_the_upstream_does_not_answer(tmp_path: Path) -> None:
    with BackgroundSimulator(SimulatorConfig()) as sim:
        closed = sim.base_url
    with ServeProcess(tmp_path, closed) as server:
        status, answer = server.call("GET", "/readyz")
        assert server.call("GET", "/healthz")[0] == 200
    assert status == 503
    assert any("upstream" in problem for problem in answer["problems"])


def test_a_job_may_carry_a_workflow_and_a_schema_inline(tmp_path: Path) -> None:
    workflow = {
        "steps": {
            "label": {"prompt": "Label: {{ text }}", "schema": "label: positive|negative"},
            "reply": {
                "after": ["label"],
                "when": 'steps.label.output.label == "negative"',
                "prompt": "Reply to: {{ text }}",
            },
        }
    }
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url) as server,
    ):
        status, answer = server.call(
            "POST", "/v1/process", {"items": _items(6), "workflow": workflow}
        )
        assert status == 200, answer
        status, typed = server.call(
            "POST",
            "/v1/process",
            {
                "items": _items(2),
                "schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "required": ["n"],
                    "additionalProperties": False,
                },
            },
        )
        assert status == 200, typed
    for row in answer["results"]:
        assert set(row["output"]) == {"label", "reply"}
        assert (row["output"]["reply"] is None) == (row["output"]["label"]["label"] != "negative")
    assert all(isinstance(row["output"]["n"], int) for row in typed["results"])


def test_a_synchronous_answer_too_large_to_carry_says_where_its_rows_are(tmp_path: Path) -> None:
    extra = ("--max-sync-answer-size", "2kB")
    with (
        BackgroundSimulator(SimulatorConfig()) as sim,
        ServeProcess(tmp_path, sim.base_url, *extra) as server,
    ):
        status, answer = server.call("POST", "/v1/process", {"items": _items(40)})
        assert status == 200, answer
        assert "results" not in answer
        _, rows = server.call("GET", answer["rows_at"]["results"])
    assert answer["status"] == "succeeded"
    assert _ndjson_ids(rows) == [f"item-{n:05d}" for n in range(40)]


def test_a_port_already_taken_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with BackgroundSimulator(SimulatorConfig()) as sim:
            args = [
                "serve",
                "--port",
                port,
                "--data-dir",
                str(tmp_path),
                "--base-url",
                sim.base_url,
            ]
            result = run_cli(args)
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
