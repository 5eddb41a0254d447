"""Sending a pack of embeddings inputs as one request, and telling its answer apart.

The answer's vectors go back to their items by `index`; its billed tokens are
shared out by each input's estimated size; each vector is stored in the cache
under its own item's key, as if it had been asked alone, so a partly cached
pack later sends only what is missing. A pack the server refuses as a bad
request (400, 413) is split in halves, and the halves sent, until the bad
inputs stand alone: they are quarantined and every other input is answered.
"""

from __future__ import annotations

import asyncio

from pipeline.cache.memo import ResponseMemo
from pipeline.core.errors import ErrorKind
from pipeline.core.models import Failure, Item, Outcome, Success, Usage
from pipeline.dispatch.dispatcher import Dispatcher
from pipeline.prepare.packing import shares
from pipeline.prepare.request_builder import Request
from pipeline.protocol.answers import embedding_answer
from pipeline.protocol.token_count import prompt_tokens

PackEntry = tuple[Item, Request, str | None]  # an item, its own request, its cache key
SPLIT_ON = frozenset({400, 413})  # the inputs may be at fault: find which


class PackSender:
    def __init__(self, dispatcher: Dispatcher, memo: ResponseMemo | None) -> None:
        self._dispatcher = dispatcher
        self._memo = memo

    async def send(self, pack: list[PackEntry], batch: int, queued: float) -> list[Outcome]:
        """Each entry's outcome, in the pack's order."""
        if len(pack) == 1:
            item, request, key = pack[0]
            return [await self._dispatcher.dispatch(item, request, key, batch, queued)]
        requests = [request for _, request, _ in pack]
        lead = pack[0][0]  # the item the request's events name
        outcome = await self._dispatcher.dispatch(
            lead, Request.packed(requests), None, batch, queued
        )
        if isinstance(outcome, Success):
            return await self._shared_out(pack, outcome)
        if outcome.kind is ErrorKind.PERMANENT and outcome.status in SPLIT_ON:
            half = len(pack) // 2
            first, second = await asyncio.gather(
                self.send(pack[:half], batch, 0.0), self.send(pack[half:], batch, 0.0)
            )
            return first + second
        return [
            Failure(item, outcome.kind, outcome.message, outcome.status, outcome.attempts)
            for item, _, _ in pack
        ]

    async def _shared_out(self, pack: list[PackEntry], answer: Success) -> list[Outcome]:
        sizes = [max(1, prompt_tokens(request.body)) for _, request, _ in pack]
        billed = shares(answer.usage.prompt_tokens, sizes)
        outcomes: list[Outcome] = []
        storing = []
        for (item, request, key), vector, tokens in zip(pack, answer.output, billed, strict=True):
            usage = Usage(tokens, 0, tokens)
            model = answer.model
            outcomes.append(Success(item, vector, usage, attempts=answer.attempts, model=model))
            if key is None or self._memo is None:
                continue
            if model is not None and model != request.model:  # the fallback model's answer
                key = self._memo.key(request.for_model(model))
            storing.append(self._memo.remember(key, embedding_answer(vector, usage, model)))
        if storing:
            await asyncio.gather(*storing)  # as a lone request holds its slot until stored
        return outcomes
