"""One event stream, several consumers: each gets every event it takes, in the order given."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.core.events import Event, EventSink, sink_takes


class Broadcast:
    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = sinks
        # By event type, the sinks that take it: most events (several a request) are for
        # one or two of them, and a call to each of the others costs every event.
        self._routes: dict[type, tuple[Callable[[Event], None], ...]] = {}

    def add(self, sink: EventSink) -> None:
        """One more consumer, from the next event on (one that needs the run's state)."""
        self._sinks = (*self._sinks, sink)
        self._routes.clear()

    @property
    def takes(self) -> frozenset[type] | None:
        """What any of the sinks takes (None: any event, as some sink takes all)."""
        kinds: frozenset[type] = frozenset()
        for sink in self._sinks:
            its = getattr(sink, "takes", None)
            if its is None:
                return None
            kinds |= its
        return kinds

    def emit(self, event: Event) -> None:
        route = self._routes.get(type(event))
        if route is None:
            kind = type(event)
            route = self._routes[kind] = tuple(s.emit for s in self._sinks if sink_takes(s, kind))
        for emit in route:
            emit(event)
