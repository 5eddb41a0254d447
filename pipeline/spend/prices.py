"""What tokens cost: the shipped price table, overrides, and the arithmetic. No I/O but
reading the table shipped with the package.

Cost is only ever computed from token counts the server reported (`usage`); a
model the table does not know is unpriced (None), never free.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from pipeline.core.config import SpendConfig

PER_TOKENS = 1_000_000  # prices are USD per million tokens
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


class Price(NamedTuple):
    """USD per million tokens; `cached_input` for prompt tokens a provider served from
    its own prompt cache (None: it charges them as any input)."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(
        self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0
    ) -> float:
        """USD for one answer's (or a run's) tokens."""
        cached = min(max(cached_prompt_tokens, 0), prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        total = (
            (prompt_tokens - cached) * self.input
            + cached * cached_rate
            + completion_tokens * self.output
        )
        return total / PER_TOKENS


class PriceTable(NamedTuple):
    checked: str  # when the prices were last compared with the providers' lists
    prices: Mapping[str, Price]  # by lower-case model name

    def price_of(self, model: str | None) -> Price | None:
        """The model's price: its exact name first, then without a provider prefix
        (`openai/gpt-4o`), then without a date suffix (`gpt-4o-2024-08-06`)."""
        if not model:
            return None
        for name in _candidates(model.lower()):
            if name in self.prices:
                return self.prices[name]
        return None

    def with_override(self, model: str, price: Price) -> PriceTable:
        """The table with `model` priced as given (flags and config win over the table)."""
        return PriceTable(self.checked, {**self.prices, model.lower(): price})


def _candidates(name: str) -> list[str]:
    names = []
    while True:
        names.append(name)
        undated = _DATE_SUFFIX.sub("", name)
        if undated != name:
            names.append(undated)
        if "/" not in name:
            return names
        name = name.split("/", 1)[1]


def parse_table(text: str | bytes) -> PriceTable:
    """A price table from JSON: `"checked": "YYYY-MM-DD"` and `"models"`, an object of
    objects with `input`, `output` and optionally `cached_input`; `"about"` is for its
    readers. ValueError names what is wrong."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the price table is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("the price table must be a JSON object")
    checked = data.get("checked")
    if not isinstance(checked, str):
        raise ValueError("the price table has no `checked` date")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ValueError("`models` must be an object of models")
    return PriceTable(checked, {name.lower(): _price(name, row) for name, row in models.items()})


def _price(name: str, row: Any) -> Price:
    if not isinstance(row, dict):
        raise ValueError(f"the price of {name!r} must be an object")
    unknown = set(row) - {"input", "output", "cached_input"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} in the price of {name!r}")
    values = {}
    for key in ("input", "output", "cached_input"):
        value = row.get(key)
        if value is None and key == "cached_input":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{key} of {name!r} must be a number of USD, 0 or more")
        values[key] = float(value)
    return Price(**values)


@functools.cache  # read once a process: sluice serve makes a run per job
def shipped_table() -> PriceTable:
    """The table shipped with this version of sluice."""
    # Beside this module, as pyproject's package-data installs it. Not importlib.resources,
    # which (with zipfile) costs each run ~3 ms at start for a file that is never zipped.
    # JSON, not TOML: orjson reads it in microseconds; importing tomllib alone took ~4 ms.
    return parse_table(Path(__file__).with_name("prices.json").read_bytes())


class Pricing:
    """The price of each model a run names: one given price for all (`--price-in` and
    `--price-out`), else the table's. Remembers each look-up; no I/O but reading the
    shipped table, when a price is first asked for."""

    def __init__(self, table: PriceTable | None = None, given: Price | None = None) -> None:
        # None: the shipped table, read once a price is asked for.
        self._table = table
        self.given = given
        self._known: dict[str | None, Price | None] = {}

    @property
    def table(self) -> PriceTable:
        if self._table is None:
            self._table = shipped_table()
        return self._table

    def price_of(self, model: str | None) -> Price | None:
        if self.given is not None:
            return self.given
        try:
            return self._known[model]
        except KeyError:
            price = self._known[model] = self.table.price_of(model)
            return price

    def source(self) -> str:
        """Where the prices come from, for the summary."""
        if self.given is not None:
            return "--price-in/--price-out"
        return f"price table checked {self.table.checked}"


def pricing_for(config: SpendConfig) -> Pricing:
    """The run's prices: the shipped table, or the one price given for every model."""
    given = None
    if config.price_in is not None and config.price_out is not None:
        given = Price(config.price_in, config.price_out)
    return Pricing(None, given)
