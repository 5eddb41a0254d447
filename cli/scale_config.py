"""The settings of jobs bigger than one process, from their flags: the engine
(`--engine`, `--ray-address`, `--ray-workers`) and the shared limits file."""

from __future__ import annotations

import importlib.util
import os
from typing import Protocol

from pipeline.core.config import EngineConfig
from pipeline.core.errors import ConfigError, UsageError


class ScaleFlags(Protocol):
    """The flags of a run these settings read (cli/run_config.RunFlags has them)."""

    @property
    def engine(self) -> str: ...
    @property
    def ray_address(self) -> str | None: ...
    @property
    def ray_workers(self) -> int | None: ...
    @property
    def api_key_env(self) -> str: ...
    @property
    def max_cost(self) -> float | None: ...
    @property
    def max_requests(self) -> int | None: ...


def engine_config(flags: ScaleFlags, planning: bool) -> EngineConfig:
    """The engine a run sends with; refused when its flags cannot hold together."""
    if flags.engine not in ("asyncio", "ray"):
        raise UsageError(f"--engine is asyncio or ray, not {flags.engine!r}")
    if flags.engine == "asyncio" or planning:  # a plan sends nothing: no cluster needed
        if flags.ray_workers is not None:
            raise UsageError("--ray-workers goes with --engine ray")
        return EngineConfig(key_variable=flags.api_key_env)
    if flags.max_cost is not None or flags.max_requests is not None:
        raise UsageError(
            "--max-cost and --max-requests are kept by the asyncio engine only; "
            "--deadline works with --engine ray"
        )
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--engine ray needs Ray, an optional extra: pip install 'sluice[ray]'")
    return EngineConfig(
        kind="ray",
        ray_address=flags.ray_address or None,
        ray_workers=flags.ray_workers,
        key_variable=flags.api_key_env,
    )


def shared_limits_path(path: str | None) -> str | None:
    """The shared limits file, made absolute (its directory must exist)."""
    if path is None or not path.strip():
        return None
    absolute = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(absolute)):
        raise UsageError(f"--shared-limits {path}: its directory does not exist")
    return absolute
