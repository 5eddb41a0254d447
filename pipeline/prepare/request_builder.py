"""Turning an item into the exact request body that will be sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from pipeline.core.config import ENDPOINT_PATHS, Endpoint, RequestConfig
from pipeline.core.errors import UsageError
from pipeline.core.jsonio import dumps
from pipeline.core.models import Item
from pipeline.prepare.templates import PromptTemplate, TemplateFieldError
from pipeline.protocol.batch_lines import is_batch_line
from pipeline.protocol.structured import StructuredOutput
from pipeline.protocol.token_count import prompt_tokens

if TYPE_CHECKING:
    from pipeline.prepare.where import Where

# Batch lines name their endpoint; only these two are answered, and always on our base URL.
BATCH_URLS: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/chat/completions": Endpoint.CHAT,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/embeddings": Endpoint.EMBEDDINGS,
}


TOO_LONG = "the prompt is about"
CHAT_ONLY_FIELDS = frozenset({"stream", "stream_options", "response_format"})


class InvalidItem(Exception):
    """The item cannot become a request; it is quarantined as invalid_input."""


class Request(NamedTuple):
    """One item's request, as it will be sent (a NamedTuple: one is built an item, see
    core/models.py)."""

    endpoint: Endpoint  # chat or embeddings: how to read the answer
    path: str
    body: dict[str, Any]
    structured: StructuredOutput | None = None  # the JSON its answer must be
    inputs: int = 1  # texts an embeddings request carries (several when packed)

    @property
    def payload(self) -> bytes:
        """The body as sent, encoded only when it is sent: an item the cache answers is
        encoded once, for its cache key (cache/keys.py)."""
        return dumps(self.body)

    @property
    def model(self) -> str | None:
        """The model the request names (what prices it)."""
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    def for_model(self, model: str) -> Request:
        """The same request, asking another model (a fallback)."""
        body = {**self.body, "model": model}
        return Request(self.endpoint, self.path, body, self.structured, self.inputs)

    @classmethod
    def packed(cls, requests: list[Request]) -> Request:
        """One embeddings request for the inputs of several (which differ in nothing else)."""
        first = requests[0]
        if len(requests) == 1:
            return first
        body = {**first.body, "input": [request.body["input"] for request in requests]}
        return cls(first.endpoint, first.path, body, None, len(requests))


class ChatForm:
    """What every plain chat request of a run shares: all of its body but the texts its
    templates render (the system prompt's, if any, then the user's)."""

    __slots__ = ("endpoint", "model", "overrides", "path", "structured", "system", "text_count")

    def __init__(
        self,
        model: str | None,
        system: bool,  # whether a system message comes before the user's
        overrides: dict[str, Any],  # max_tokens, temperature, response_format, --body, ...
        structured: StructuredOutput | None,
    ) -> None:
        self.endpoint = Endpoint.CHAT
        self.path = ENDPOINT_PATHS[Endpoint.CHAT]
        self.model = model
        self.system = system
        self.overrides = overrides
        self.structured = structured
        self.text_count = 2 if system else 1  # how many texts fill a body

    def body(self, texts: tuple[str, ...]) -> dict[str, Any]:
        """The request body for one item's rendered texts."""
        user = {"role": "user", "content": texts[-1]}
        messages = [{"role": "system", "content": texts[0]}, user] if self.system else [user]
        return {"model": self.model, "messages": messages, **self.overrides}


class Unbuilt(NamedTuple):
    """A plain chat item's request before its body is built: the texts rendered for it.
    Its cache key is computed from the texts alone (cache/keys.py FilledKeys), so an item
    the cache answers never has a body built or encoded; `build` makes the request to
    send. It tells what reading an answer needs (endpoint, structured, model) as a
    Request does."""

    texts: tuple[str, ...]
    form: ChatForm

    @property
    def endpoint(self) -> Endpoint:
        return self.form.endpoint

    @property
    def structured(self) -> StructuredOutput | None:
        return self.form.structured

    @property
    def model(self) -> str | None:
        return self.form.model

    def build(self) -> Request:
        form = self.form
        return Request(form.endpoint, form.path, form.body(self.texts), form.structured)


ITEM_REQUESTS = (Request, Unbuilt)  # an item's own request, built or not (for isinstance)


def as_sent(request: Request | Unbuilt) -> Request:
    """The request itself, its body built if it was not yet."""
    return request if isinstance(request, Request) else request.build()


def detect_endpoint(first_row: dict[str, Any] | None) -> Endpoint:
    """Raw when the first readable line is already in OpenAI batch form, else chat."""
    return Endpoint.RAW if first_row is not None and is_batch_line(first_row) else Endpoint.CHAT


class RequestBuilder:
    def __init__(self, config: RequestConfig) -> None:
        self.config = config
        self.endpoint: Endpoint | None = None
        self.structured = structured_output(config)
        if config.endpoint is not None:
            self._settle_endpoint(config.endpoint)
        self._prompt = PromptTemplate(config.prompt, "prompt") if config.prompt else None
        self._system = PromptTemplate(config.system, "system") if config.system else None
        self._overrides = self._body_overrides()
        self._where: Where | None = None
        self._where_failed: type[Exception] = Exception  # WhereEvalError, once there is one
        if config.where is not None:
            # --where's parser and evaluator are imported by the runs that have one.
            from pipeline.prepare.where import WhereEvalError, compile_where

            self._where, self._where_failed = compile_where(config.where), WhereEvalError
        self._truncate = config.truncate
        self._max_input_tokens = config.max_input_tokens
        self._chat = ChatForm(
            config.model, self._system is not None, self._overrides, self.structured
        )

    def wanted(self, item: Item) -> bool:
        """Whether `--where` selects the item (always, without one); InvalidItem when the
        expression cannot be evaluated on its fields."""
        if self._where is None or item.row is None:
            return True
        try:
            return self._where.matches(item.row)
        except self._where_failed as exc:
            raise InvalidItem(str(exc)) from exc

    @property
    def where(self) -> Where | None:
        return self._where

    def prepare(self, item: Item) -> Request | Unbuilt:
        """The item's request as a run first needs it: for a plain chat item, only its
        rendered texts (Unbuilt), which give its cache key; otherwise built. A prompt
        over --max-input-tokens is measured on the whole body, so it is built."""
        if self.endpoint is not Endpoint.CHAT or self._max_input_tokens is not None:
            return self.build(item)
        row = self._row(item, None)
        try:
            return Unbuilt(self._chat_texts(row), self._chat)
        except TemplateFieldError as exc:
            raise InvalidItem(str(exc)) from exc

    def build(self, item: Item, fields: dict[str, Any] | None = None) -> Request:
        """The item's request; `fields` are what the templates see instead of the item's
        own (a workflow step's: the item's fields and the earlier steps' outputs)."""
        row = self._row(item, fields)
        try:
            endpoint, body = self._body_for(row)
        except TemplateFieldError as exc:
            raise InvalidItem(str(exc)) from exc
        if self._max_input_tokens is not None:
            tokens = prompt_tokens(body)
            if tokens > self._max_input_tokens:
                raise InvalidItem(
                    f"{TOO_LONG} {tokens:,} tokens, over --max-input-tokens "
                    f"{self._max_input_tokens:,}; not sent"
                )
        structured = self.structured if endpoint is Endpoint.CHAT else None
        return Request(endpoint, ENDPOINT_PATHS[endpoint], body, structured)

    def _row(self, item: Item, fields: dict[str, Any] | None) -> dict[str, Any]:
        """The fields the templates see; the endpoint settled by the first of them."""
        row = item.row if fields is None else fields
        if row is None:
            raise InvalidItem(item.problem or "item has no fields")
        if self.endpoint is None:
            self._settle_endpoint(detect_endpoint(row))
        if self._truncate:
            row = _truncated(row, self._truncate)
        return row

    def _settle_endpoint(self, endpoint: Endpoint) -> None:
        if endpoint is not Endpoint.RAW and not self.config.model:
            raise UsageError(f"--model is required for the {endpoint} endpoint")
        if endpoint is Endpoint.EMBEDDINGS and self.structured is not None:
            raise UsageError("--schema and --json shape chat answers; embeddings are vectors")
        if endpoint is Endpoint.EMBEDDINGS and self.config.stream:
            raise UsageError("--stream is for chat answers; embeddings are not streamed")
        self.endpoint = endpoint

    def _body_for(self, row: dict[str, Any]) -> tuple[Endpoint, dict[str, Any]]:
        if self.endpoint is Endpoint.RAW:
            return self._batch_line_body(row)
        if self.endpoint is Endpoint.EMBEDDINGS:
            return Endpoint.EMBEDDINGS, self._embeddings_body(row)
        return Endpoint.CHAT, self._chat_body(row)

    def _chat_body(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._chat.body(self._chat_texts(row))

    def _chat_texts(self, row: dict[str, Any]) -> tuple[str, ...]:
        """The system prompt's text, if any, then the user's."""
        system = self._system.render(row) if self._system is not None else None
        user = self._prompt.render(row) if self._prompt is not None else _default_user_text(row)
        return (user,) if system is None else (system, user)

    def _embeddings_body(self, row: dict[str, Any]) -> dict[str, Any]:
        field = self.config.input_field
        if field not in row:
            raise InvalidItem(f"item has no {field!r} field to embed (see --input-field)")
        text = row[field]
        if not isinstance(text, str) or not text:
            raise InvalidItem(f"field {field!r} must be a non-empty string to embed")
        return {"model": self.config.model, "input": text, **self._overrides}

    def _batch_line_body(self, row: dict[str, Any]) -> tuple[Endpoint, dict[str, Any]]:
        if not is_batch_line(row):
            raise InvalidItem("line is not in batch form: it needs custom_id, method, url and body")
        method = str(row.get("method", "POST")).upper()
        endpoint = BATCH_URLS.get(str(row["url"]))
        if method != "POST" or endpoint is None:
            known = ", ".join(sorted(u for u in BATCH_URLS if u.startswith("/v1")))
            raise InvalidItem(
                f"batch line must be POST to one of {known}, not {method} {row['url']}"
            )
        body = row["body"]
        if not isinstance(body, dict):
            raise InvalidItem("batch line 'body' must be a JSON object")
        overrides = self._overrides
        if endpoint is Endpoint.EMBEDDINGS:  # --stream and --schema shape chat answers only
            overrides = {k: v for k, v in overrides.items() if k not in CHAT_ONLY_FIELDS}
        merged = {**body, **overrides}
        if self.config.model:
            merged["model"] = self.config.model
        if "model" not in merged:
            raise InvalidItem("batch line body has no 'model' and no --model was given")
        return endpoint, merged

    def _body_overrides(self) -> dict[str, Any]:
        config = self.config
        overrides: dict[str, Any] = {}
        if config.max_tokens is not None:
            overrides["max_tokens"] = config.max_tokens
        if config.temperature is not None:
            overrides["temperature"] = config.temperature
        if self.structured is not None:
            overrides["response_format"] = self.structured.response_format
        if config.stream:
            overrides["stream"] = True
            overrides["stream_options"] = {"include_usage": True}  # usage in the last chunk
        overrides.update(config.body_options)
        return overrides


def structured_output(config: RequestConfig) -> StructuredOutput | None:
    """What `--schema` or `--json` asks of every chat answer, if anything."""
    if config.schema is None and not config.json_output:
        return None
    return StructuredOutput(config.schema, config.schema_name)


def _truncated(row: dict[str, Any], limits: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    """The row as the templates see it with `--truncate`: text fields cut to their length.
    The item itself, written back in its result row, keeps every character."""
    cut = dict(row)
    for field, characters in limits:
        value = cut.get(field)
        if isinstance(value, str) and len(value) > characters:
            cut[field] = value[:characters]
    return cut


def _default_user_text(row: dict[str, Any]) -> str:
    """Without a prompt template the item itself, as JSON, is the user message."""
    return dumps(row).decode()
