"""sluice's engine. The version lives here, read by pyproject.toml and by `sluice --version`:
a constant answers in no time, where reading the installed metadata costs ~80 ms."""

__version__ = "0.1.0"
