"""`sluice cache`: look at, empty or shrink the store of answers kept between runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from cli.errors import fail
from cli.units import format_size, parse_size
from pipeline.core.errors import ConfigError, OutputError, SluiceError
from pipeline.core.words import counted

if TYPE_CHECKING:
    from pipeline.cache.store import ResponseCache

# diskcache and the store are imported by the functions that open the cache: every
# start-up of sluice imports this module (for `sluice cache` and DEFAULT_CACHE_SIZE).

# A new cache's limit, as a flag value; a test holds it equal to the store's DEFAULT_SIZE_LIMIT.
DEFAULT_CACHE_SIZE = "5GB"


def _store_errors() -> tuple[type[BaseException], ...]:
    """Errors the store itself raises once open: a damaged database, a vanished
    directory, another process holding the lock for too long."""
    import sqlite3

    import diskcache

    return (sqlite3.Error, OSError, diskcache.Timeout)


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CACHE_HOME/sluice/responses, or ~/.cache/sluice/responses."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative path: it would depend on the cwd.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "sluice" / "responses"


cache_app = typer.Typer(
    no_args_is_help=True,
    help="Look at, empty or shrink the response cache: answers kept on disk so that "
    "running the same items again costs nothing. Deleting the cache is always safe.",
)

CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="SLUICE_CACHE_DIR",
        help="Where the cache lives "
        "(default: $XDG_CACHE_HOME/sluice/responses, else ~/.cache/sluice/responses).",
        show_default=False,
    ),
]


@cache_app.command()
def stats(
    cache_dir: CacheDir = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Show where the cache is, how many answers it holds and how much disk it uses."""
    directory = _resolve(cache_dir)
    if not _exists(directory):
        report: dict[str, object] = {
            "directory": str(directory),
            "exists": False,
            "entries": 0,
            "size_bytes": 0,
            "size_limit": None,
        }
        _print(report, as_json, f"no cache at {directory} (0 entries)")
        return
    try:
        with _open(directory, size_limit=None) as cache:
            found = cache.stats()
    except _store_errors() as error:
        fail(ConfigError(f"cannot read the response cache in {directory}: {error}"))
    report = {
        "directory": found.directory,
        "exists": True,
        "entries": found.entries,
        "size_bytes": found.size_bytes,
        "size_limit": found.size_limit,
    }
    table = "\n".join(
        [
            f"directory  {found.directory}",
            f"entries    {found.entries}",
            f"size       {format_size(found.size_bytes)}",
            f"limit      {format_size(found.size_limit)}",
        ]
    )
    _print(report, as_json, table)


@cache_app.command()
def clear(cache_dir: CacheDir = None) -> None:
    """Delete every cached answer (the next run asks the API again)."""
    _remove_entries(_resolve(cache_dir), None, "clear", lambda cache: cache.clear())


@cache_app.command()
def prune(
    cache_dir: CacheDir = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            help="Shrink the cache to at most this size, oldest answers first: "
            "500MB, 5GB, 1GiB. It becomes the cache's limit for later runs too, until "
            "another --max-size or `sluice run --cache-size` changes it. "
            "(default: the limit the cache already has)"
        ),
    ] = None,
) -> None:
    """Delete expired answers, then the oldest ones until the cache fits in its size limit."""
    directory = _resolve(cache_dir)
    try:
        limit = parse_size(max_size) if max_size is not None else None
    except SluiceError as error:
        fail(error)
    _remove_entries(directory, limit, "prune", lambda cache: cache.prune())


def _remove_entries(
    directory: Path, size_limit: int | None, verb: str, remove: Callable[[ResponseCache], int]
) -> None:
    if not _exists(directory):
        typer.echo(f"no cache at {directory}: nothing to {verb}")
        return
    try:
        with _open(directory, size_limit=size_limit) as cache:
            removed = remove(cache)
    except _store_errors() as error:
        fail(OutputError(f"cannot {verb} the response cache in {directory}: {error}"))
    typer.echo(f"removed {counted(removed, 'entry')} from {directory}")


def _resolve(cache_dir: Path | None) -> Path:
    # Resolved at call time, not import time, so XDG_CACHE_HOME set later counts.
    return cache_dir if cache_dir is not None else default_cache_dir()


def _exists(directory: Path) -> bool:
    # Looking must not create anything: a mistyped --cache-dir (or ~) must not
    # gain a cache.db because someone asked for stats.
    from pipeline.cache.disk import DBNAME

    try:
        return (directory / DBNAME).is_file()
    except OSError as error:
        fail(ConfigError(f"cannot look at the response cache in {directory}: {error}"))


@contextmanager
def _open(directory: Path, size_limit: int | None) -> Iterator[ResponseCache]:
    from pipeline.cache.store import CacheUnavailable, ResponseCache

    try:
        cache = ResponseCache(str(directory), size_limit=size_limit, ttl=None)
    except CacheUnavailable as error:
        fail(ConfigError(f"{error}; delete the directory or point --cache-dir elsewhere"))
    with cache:
        yield cache


def _print(report: dict[str, object], as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(orjson.dumps(report).decode())
    else:
        typer.echo(text)
