"""One event stream, several consumers: each gets every event, in the order given."""

from __future__ import annotations

from pipeline.core.events import Event, EventSink


class Broadcast:
    def __init__(self, *sinks: EventSink) -> None:
        self._emitters = tuple(sink.emit for sink in sinks)

    def add(self, sink: EventSink) -> None:
        """One more consumer, from the next event on (one that needs the run's state)."""
        self._emitters = (*self._emitters, sink.emit)

    def emit(self, event: Event) -> None:
        for emit in self._emitters:
            emit(event)
