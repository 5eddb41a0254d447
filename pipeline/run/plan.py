"""`sluice plan` (`run --dry-run`): everything a run would do before its first request.

It reads every input and renders every request exactly as the run would (same
ids, same templates, same cache keys, the same committed batches skipped), and
counts: items, invalid items by kind, items the cache or earlier attempts
already answered, requests to send (identical requests count once, as the run
sends them once), tokens, cost and the time the limits imply. It sends nothing,
unless --probe-limits asks for one tiny request to learn the server's limits.
Memory stays flat: a disk set tells repeated requests apart, and only the first
`show` requests are kept.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.cache.memo import ResponseMemo
from pipeline.cache.store import CacheUnavailable, ResponseCache
from pipeline.core.config import Endpoint, RunConfig, result_field_clash
from pipeline.core.events import DISCARD
from pipeline.core.models import Item
from pipeline.dispatch.probe import Limits, probe_limits
from pipeline.prepare.batching import input_batches
from pipeline.prepare.packing import Packer, PackLimits
from pipeline.prepare.preparer import ItemRequests, PreparedBatch, Preparer, Skipped, Staged
from pipeline.prepare.request_builder import TOO_LONG, Request, Unbuilt, as_sent
from pipeline.protocol.token_count import completion_cap, prompt_tokens
from pipeline.read.ids import SeenIds
from pipeline.read.sources import check_inputs
from pipeline.run.assembly import item_requests
from pipeline.spend.estimate import CompletionGuess, completion_guess, cost_of, seconds_needed
from pipeline.spend.prices import pricing_for
from pipeline.state.fingerprint import input_identity, run_fingerprint
from pipeline.state.resume import skip_committed, with_digests
from pipeline.state.store import read_state
from pipeline.workflow.requests import step_request

EXIT_INVALID_ITEMS = 65
_CLASH = result_field_clash("").split("'")[0]  # the fixed start of that message


@dataclass(slots=True)
class PlanCounts:
    """What the streamed pass adds up (no I/O)."""

    items: int = 0
    done: int = 0  # committed by earlier attempts of the job (in the state)
    invalid: Counter[str] = field(default_factory=Counter)  # by kind
    skipped: int = 0  # left out by --where
    cached: int = 0
    twins: int = 0  # identical to an earlier request of the run: answered by it
    requests: int = 0
    chat_requests: int = 0  # the others (embeddings) have no completion
    prompt_tokens: int = 0
    capped_completion_tokens: int = 0
    uncapped_requests: int = 0  # chat requests with no max_tokens: no ceiling
    cached_completion_tokens: int = 0
    state_differs: bool = False  # the state holds another job: the run would refuse it
    shown: list[dict[str, Any]] = field(default_factory=list)
    packer: Packer[None] | None = None  # embeddings inputs share requests, as the run packs them
    # --workflow: each step's own counts (its first steps' exactly; a later step's
    # `reached_at_most`: items that may get to it, its request unknown until then).
    steps: dict[str, PlanCounts] = field(default_factory=dict)
    reached_at_most: int = 0


async def make_plan(config: RunConfig, show: int, probe: bool) -> dict[str, Any]:
    """The plan as the JSON object `sluice plan --json` prints."""
    check_inputs(config.read.inputs)
    counts = count_requests(config, show)
    given = config.traffic.rpm or config.traffic.tpm
    limits = Limits(config.traffic.rpm, config.traffic.tpm, None, "given" if given else "none")
    if probe:
        limits = await probe_limits(config, limits)
    return plan_dict(config, counts, limits)


def count_requests(config: RunConfig, show: int) -> PlanCounts:
    counts = PlanCounts()
    request = config.request
    packs = request.endpoint is Endpoint.EMBEDDINGS and request.inputs_per_request > 1
    if packs and config.workflow is None:
        counts.packer = Packer(PackLimits(inputs=request.inputs_per_request))
    if config.workflow is not None:
        counts.steps = {name: PlanCounts() for name in config.workflow.runs}
    builder = item_requests(config)
    seen, twins = SeenIds(), SeenIds()
    try:
        with _memo(config) as memo:
            for prepared in _prepared(config, builder, seen, memo, counts):
                _count_batch(prepared, memo, twins, counts, show)
        if counts.packer is not None and len(counts.packer):
            counts.requests += 1  # the last pack, not full
    finally:
        seen.close()
        twins.close()
    return counts


def _prepared(
    config: RunConfig,
    builder: ItemRequests,
    seen: SeenIds,
    memo: ResponseMemo | None,
    counts: PlanCounts,
) -> Iterator[PreparedBatch]:
    read = config.read
    batches = input_batches(read, seen)  # a shard's: its own, numbered 0, 1, … as in its state
    directory = config.state.directory
    if directory is not None and os.path.isdir(directory) and not config.state.fresh:
        stored = read_state(directory)
        if stored.resume.batches:
            inputs = [input_identity(path) for path in read.inputs]
            if stored.fingerprint != run_fingerprint(config, inputs):
                counts.state_differs = True
            else:
                counts.done = stored.totals.items
                batches = skip_committed(with_digests(batches), stored.resume)
    fields = config.output.result_fields
    if memo is None:
        return Preparer(builder, result_fields=fields)(batches)
    return Preparer(builder, memo.key, memo.lookup, fields)(batches)


def _count_batch(
    prepared: PreparedBatch,
    memo: ResponseMemo | None,
    twins: SeenIds,
    counts: PlanCounts,
    show: int,
) -> None:
    items = prepared.batch.items
    counts.items += len(items)
    to_send: list[_ToCount] = []
    for item, request, key in zip(items, prepared.requests, prepared.keys, strict=True):
        if isinstance(request, Request | Unbuilt):
            to_send.append((item, request, key, counts))
        elif isinstance(request, Staged):
            to_send.extend(_first_steps(item, request, memo, counts))
        elif isinstance(request, Skipped):
            counts.skipped += 1
        else:
            counts.invalid[invalid_kind(item, request)] += 1
    known = {}
    if memo is not None:
        wanted = [(request, key) for _, request, key, _ in to_send if key is not None]
        known = memo.recall(wanted, prepared.stored)
    keys = [key for _, _, key, _ in to_send if key is not None and key not in known]
    repeated = {keys[i] for i in twins.add_many(list(keys))} if keys else set()
    for item, request, key, step in to_send:
        if key is not None and key in known:
            for tally in {id(counts): counts, id(step): step}.values():
                tally.cached += 1
                tally.cached_completion_tokens += known[key].usage.completion_tokens
            continue
        if key in repeated:
            repeated.discard(key)  # the first of the twins is sent; later ones wait for it
            counts.twins += 1
            continue
        sent = as_sent(request)  # built if a stored answer was found but cannot be reused
        _count_request(item, sent, counts, show)
        if step is not counts:
            _count_request(item, sent, step, 0)


# A request to count: its item, the request, its cache key, and the step's own counts
# (the run's counts themselves outside workflows).
_ToCount = tuple[Item, Request | Unbuilt, str | None, "PlanCounts"]


def _first_steps(
    item: Item, staged: Staged, memo: ResponseMemo | None, counts: PlanCounts
) -> list[_ToCount]:
    """A workflow item's requests known before anything is sent: its first steps'. The
    steps after them read answers not yet given: they are counted as reached, at most."""
    found: list[_ToCount] = []
    for name in counts.steps:
        step = counts.steps[name]
        made = staged.first.get(name, _LATER)
        if isinstance(made, Request):
            found.append((item, made, staged.keys.get(name), step))
        elif isinstance(made, Skipped):
            step.skipped += 1
        elif made is _LATER:
            step.reached_at_most += 1
    return found


_LATER = object()  # a step that reads earlier steps: its request is made during the run


def _count_request(item: Item, request: Request, counts: PlanCounts, show: int) -> None:
    tokens = prompt_tokens(request.body)
    counts.prompt_tokens += tokens
    packer = counts.packer
    if packer is not None and request.endpoint is Endpoint.EMBEDDINGS:
        counts.requests += len(packer.add(None, tokens))
    else:
        counts.requests += 1
    if request.endpoint is Endpoint.CHAT:
        counts.chat_requests += 1
        cap = completion_cap(request.body)
        if cap is None:
            counts.uncapped_requests += 1
        else:
            counts.capped_completion_tokens += cap
    if len(counts.shown) < show:
        counts.shown.append({"id": item.id, "path": request.path, "body": request.body})


def invalid_kind(item: Item, why: str | None) -> str:
    """Why an item cannot be sent, as one of a few kinds."""
    if item.row is None:
        return "unreadable"
    problem = item.problem or why or ""
    if problem.startswith("duplicate id"):
        return "duplicate_id"
    if item.problem is not None:
        return "bad_id"
    if problem.startswith(_CLASH):
        return "result_field_clash"
    if problem.startswith(TOO_LONG):
        return "too_long"
    if problem.startswith("--where"):
        return "where_error"
    return "cannot_render"


class _Memo:
    """The run's cache, read only: a plan never creates it, nor stores in it."""

    def __init__(self, config: RunConfig) -> None:
        self._config = config
        self._cache: ResponseCache | None = None

    def __enter__(self) -> ResponseMemo | None:
        settings = self._config.cache
        if settings is None or not settings.read or not os.path.isdir(settings.directory):
            return None
        try:
            self._cache = ResponseCache(settings.directory, settings.size_limit, settings.ttl)
        except CacheUnavailable:
            return None
        return ResponseMemo(self._cache, self._config.connection.base_url, True, DISCARD)

    def __exit__(self, *exc: object) -> None:
        if self._cache is not None:
            self._cache.close()


def _memo(config: RunConfig) -> _Memo:
    return _Memo(config)


def plan_dict(config: RunConfig, counts: PlanCounts, limits: Limits) -> dict[str, Any]:
    guess = _completion_guess(counts)
    expected_completion = guess.tokens_per_request * counts.chat_requests
    pricing = pricing_for(config.spend)
    price = pricing.price_of(config.request.model)
    max_completion = None if counts.uncapped_requests else counts.capped_completion_tokens
    steps = _steps(config, counts)
    seconds = seconds_needed(
        counts.requests,
        counts.prompt_tokens + expected_completion,
        limits.rpm,
        limits.tpm,
        limits.latency,
        config.traffic.concurrency,
    )
    invalid = sum(counts.invalid.values())
    return {
        "items": counts.items + counts.done,
        "done": counts.done,
        "invalid": invalid,
        "invalid_by_kind": dict(sorted(counts.invalid.items())),
        "skipped_by_where": counts.skipped,
        "cached": counts.cached,
        "duplicates": counts.twins,
        "requests": counts.requests,
        "prompt_tokens": counts.prompt_tokens,
        "max_completion_tokens": max_completion,
        "expected_completion_tokens": round(expected_completion),
        "completion_basis": guess.basis,
        "cost_usd": _usd(
            _sum_of(steps, "cost_usd")
            if steps
            else cost_of(price, counts.prompt_tokens, expected_completion)
        ),
        "max_cost_usd": _usd(
            _sum_of(steps, "max_cost_usd")
            if steps
            else cost_of(price, counts.prompt_tokens, max_completion)
            if max_completion is not None
            else None
        ),
        "price": None
        if price is None
        else {
            "model": config.request.model,
            "input_per_million": price.input,
            "output_per_million": price.output,
            "source": pricing.source(),
        },
        "seconds": None if seconds is None else round(seconds, 1),
        "limits": {"rpm": limits.rpm, "tpm": limits.tpm, "source": limits.source},
        "concurrency": config.traffic.concurrency,
        "state_differs": counts.state_differs,
        "shown": counts.shown,
        **({"steps": steps} if steps else {}),
    }


def _completion_guess(counts: PlanCounts) -> CompletionGuess:
    chat = counts.chat_requests
    cap_mean = None
    if chat and not counts.uncapped_requests:
        cap_mean = counts.capped_completion_tokens / chat
    answered = counts.cached
    cached_mean = counts.cached_completion_tokens / answered if answered else None
    return completion_guess(cached_mean, None, cap_mean)


def _steps(config: RunConfig, counts: PlanCounts) -> dict[str, dict[str, Any]]:
    """--workflow: each step's share. A step that reads earlier answers cannot be rendered
    before they exist: it says how many items may reach it, and is not priced."""
    if config.workflow is None:
        return {}
    pricing = pricing_for(config.spend)
    planned = {}
    for name, step in counts.steps.items():
        model = _step_model(config, name)
        price = pricing.price_of(model) if model else None
        guess = _completion_guess(step)
        expected = guess.tokens_per_request * step.chat_requests
        capped = None if step.uncapped_requests else step.capped_completion_tokens
        later = step.reached_at_most > 0
        planned[name] = {
            "model": model,
            "requests": None if later else step.requests,
            "requests_at_most": step.reached_at_most if later else step.requests,
            "cached": step.cached,
            "skipped_by_when": step.skipped,
            "prompt_tokens": None if later else step.prompt_tokens,
            "cost_usd": None if later else _usd(cost_of(price, step.prompt_tokens, expected)),
            "max_cost_usd": None
            if later or capped is None
            else _usd(cost_of(price, step.prompt_tokens, capped)),
        }
    return planned


def _step_model(config: RunConfig, name: str) -> str | None:
    step = config.workflow.steps[name]
    if step.call is not None:
        return None
    return step_request(config.request, step).model


def _sum_of(steps: dict[str, dict[str, Any]], key: str) -> float | None:
    """The known part of a workflow's cost: its steps that can be priced now."""
    known = [step[key] for step in steps.values() if step[key] is not None]
    return sum(known) if known else None


def _usd(amount: float | None) -> float | None:
    return None if amount is None else round(amount, 6)
