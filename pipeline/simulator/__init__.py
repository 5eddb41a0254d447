"""An OpenAI-compatible API simulator: behind `sluice sim`, the test suite and the benchmarks."""

from pipeline.simulator.answers import chat_content, content_digest, embedding
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.server import build_app
from pipeline.simulator.stats import STATS_KEY, SimulatorStats

__all__ = [
    "STATS_KEY",
    "BackgroundSimulator",
    "SimulatorConfig",
    "SimulatorStats",
    "build_app",
    "chat_content",
    "content_digest",
    "embedding",
]
