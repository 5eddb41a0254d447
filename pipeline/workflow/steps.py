"""A workflow file's steps, read and checked before anything is sent (pure; no I/O).

    [steps.label]                      [steps.draft]
    prompt = "Label: {{ text }}"       after = ["label"]
    schema = "label: pos|neg"          when = 'steps.label.output.label == "neg"'
                                       prompt = "Reply to: {{ text }} ({{ steps.label.output }})"

Each `[steps.NAME]` table holds the options of a single run plus `after` (the
steps whose outputs it uses), `when` (the --where language, over the item and
earlier outputs), `optional` and `fallback`. A mistake a run would only meet
halfway (a cycle, a name no step has, a template or condition reading a step
that is not among its dependencies, an unknown option) is a ConfigError naming
it, so a wrong workflow costs nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import ConfigError
from pipeline.prepare.where import Where, WhereSyntaxError, compile_where

if TYPE_CHECKING:
    import jinja2

STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The options of a single run a step may set; the rest of a run's options are the run's.
REQUEST_OPTIONS = frozenset(
    {
        "prompt", "prompt_file", "system", "system_file", "model", "endpoint", "schema",
        "max_tokens", "temperature", "options", "input_field",
    }
)  # fmt: skip
STEP_OPTIONS = REQUEST_OPTIONS | {"after", "when", "optional", "fallback", "call"}
TEMPLATES = ("prompt", "system")
_NAME = r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)"
_STEP_PATH = re.compile(rf"\bsteps{_NAME}(?:{_NAME})?(?:{_NAME})?")


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    options: Mapping[str, Any]  # the request options it sets (REQUEST_OPTIONS)
    after: tuple[str, ...] = ()
    when: Where | None = None
    optional: bool = False  # its failure leaves null; the item still succeeds
    fallback: str | None = None  # a step that answers while this one's breaker is open
    call: str | None = None  # "package.module:function": answered here, not by a model


@dataclass(frozen=True, slots=True)
class Workflow:
    steps: Mapping[str, Step]  # in the file's order
    order: tuple[str, ...]  # every step after the steps it depends on
    home: str | None = None  # the workflow file's directory: `call` modules are found there

    @property
    def stand_ins(self) -> frozenset[str]:
        """Steps named as another's `fallback`: they answer only in its place."""
        return frozenset(step.fallback for step in self.steps.values() if step.fallback)

    @property
    def runs(self) -> tuple[str, ...]:
        """The steps every item goes through, each after its dependencies."""
        stand_ins = self.stand_ins
        return tuple(name for name in self.order if name not in stand_ins)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The steps a row's output holds, in the file's order."""
        stand_ins = self.stand_ins
        return tuple(name for name in self.steps if name not in stand_ins)

    def identity(self) -> dict[str, Any]:
        """Everything about the steps that shapes a row, for the run's fingerprint."""
        return {
            name: {
                "options": dict(step.options),
                "after": list(step.after),
                "when": step.when.text if step.when is not None else None,
                "optional": step.optional,
                "fallback": step.fallback,
                "call": step.call,
            }
            for name, step in self.steps.items()
        }

    def ancestors(self, name: str) -> frozenset[str]:
        """The steps that finish before `name` starts: its dependencies, and theirs."""
        found: set[str] = set()
        waiting = list(self.steps[name].after)
        while waiting:
            step = waiting.pop()
            if step not in found:
                found.add(step)
                waiting.extend(self.steps[step].after)
        return frozenset(found)


def read_workflow(tables: Mapping[str, Any]) -> Workflow:
    """The workflow a parsed TOML file describes; ConfigError naming the first mistake."""
    unknown = set(tables) - {"steps"}
    if unknown:
        raise ConfigError(f"workflow: unknown table {sorted(unknown)[0]!r} (only [steps.NAME])")
    raw = tables.get("steps")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("workflow: no steps; name each as a [steps.NAME] table")
    steps = {name: _step(name, table) for name, table in raw.items()}
    _check_names(steps)
    order = _ordered(steps)
    workflow = Workflow(steps, order)
    for step in steps.values():
        _check_references(workflow, step)
        _check_role(workflow, step)
    return workflow


def _check_role(workflow: Workflow, step: Step) -> None:
    """A `call` step has no model to ask; a stand-in (another step's fallback) answers in
    that step's place, so it reads only what that step may read and is read by no one."""
    if step.call is not None:
        asked = sorted(set(step.options) - {"schema"})
        if asked:
            raise ConfigError(
                f"workflow: steps.{step.name} is answered by its call; it takes no {asked[0]!r}"
            )
    if step.name not in workflow.stand_ins:
        return
    for other in workflow.steps.values():
        if step.name in other.after:
            raise ConfigError(
                f"workflow: steps.{other.name}.after names {step.name!r}, which only answers "
                "as a fallback; name the step it stands in for"
            )
    for primary in (s for s in workflow.steps.values() if s.fallback == step.name):
        if step.when is not None:
            raise ConfigError(
                f"workflow: steps.{step.name} answers for steps.{primary.name}, whose `when` "
                "decides; remove its own"
            )
        extra = sorted(workflow.ancestors(step.name) - workflow.ancestors(primary.name))
        if extra:
            raise ConfigError(
                f"workflow: steps.{step.name} stands in for steps.{primary.name} and so may "
                f"read only what it reads, not steps.{extra[0]}"
            )


def _step(name: str, table: Any) -> Step:
    if not STEP_NAME.match(name):
        raise ConfigError(f"workflow: step name {name!r} must be letters, digits and _")
    if not isinstance(table, Mapping):
        raise ConfigError(f"workflow: steps.{name} must be a table of options")
    unknown = sorted(set(table) - STEP_OPTIONS)
    if unknown:
        raise ConfigError(
            f"workflow: steps.{name} has an unknown option {unknown[0]!r} "
            f"(a step takes: {', '.join(sorted(STEP_OPTIONS))})"
        )
    after = table.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise ConfigError(f"workflow: steps.{name}.after must be a list of step names")
    when = _condition(name, table.get("when"))
    optional = table.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError(f"workflow: steps.{name}.optional must be true or false")
    fallback, call = table.get("fallback"), table.get("call")
    for key, value in (("fallback", fallback), ("call", call)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"workflow: steps.{name}.{key} must be a string")
    options = {key: value for key, value in table.items() if key in REQUEST_OPTIONS}
    return Step(name, options, tuple(after), when, optional, fallback, call)


def _condition(name: str, text: Any) -> Where | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ConfigError(f"workflow: steps.{name}.when must be an expression in a string")
    try:
        return compile_where(text, label=f"steps.{name}.when")
    except WhereSyntaxError as exc:
        raise ConfigError(f"workflow: {exc.message}") from exc


def _check_names(steps: Mapping[str, Step]) -> None:
    for step in steps.values():
        for used, what in [(a, "after") for a in step.after] + [(step.fallback, "fallback")]:
            if used is not None and used not in steps:
                raise ConfigError(
                    f"workflow: steps.{step.name}.{what} names {used!r}, which is not a step "
                    f"(the steps: {', '.join(steps)})"
                )
        if step.fallback == step.name:
            raise ConfigError(f"workflow: steps.{step.name} cannot be its own fallback")
        if step.call is not None and ":" not in step.call:
            raise ConfigError(
                f"workflow: steps.{step.name}.call must name a function as "
                f"'package.module:function', not {step.call!r}"
            )


def _ordered(steps: Mapping[str, Step]) -> tuple[str, ...]:
    """The steps in an order where each follows its dependencies; a cycle is refused."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" on the current path, "done" once placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            loop = [*path[path.index(name) :], name]
            raise ConfigError(f"workflow: the steps form a cycle: {' -> '.join(loop)}")
        state[name] = "visiting"
        for before in steps[name].after:
            visit(before, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in steps:
        visit(name, [])
    return tuple(order)


def _check_references(workflow: Workflow, step: Step) -> None:
    """A step may read only the outputs of steps that finish before it, and only the
    fields their schemas give."""
    readable = workflow.ancestors(step.name)
    places = [(key, _template_paths(step, key)) for key in TEMPLATES if key in step.options]
    if step.when is not None:
        paths = [tuple(p for p in path if p) for path in _STEP_PATH.findall(step.when.text)]
        places.append(("when", paths))
    for key, paths in places:
        for other in sorted({path[0] for path in paths} - readable):
            known = "not a step" if other not in workflow.steps else "not among its dependencies"
            raise ConfigError(
                f"workflow: steps.{step.name}.{key} reads steps.{other}, which is {known}; "
                f"add it to steps.{step.name}.after"
            )
        for path in sorted(paths):
            _check_path(workflow, f"steps.{step.name}.{key}", path)


def _check_path(workflow: Workflow, place: str, path: tuple[str, ...]) -> None:
    """`steps.NAME.output.FIELD`: a step offers only `output`, and an object schema
    that lists its properties (and allows no others) names every field there is."""
    if len(path) < 2:
        return
    name, part = path[0], path[1]
    if part != "output":
        raise ConfigError(
            f"workflow: {place} reads steps.{name}.{part}; a step gives only steps.{name}.output"
        )
    fields = _schema_fields(workflow.steps[name].options.get("schema"))
    if len(path) > 2 and fields is not None and path[2] not in fields:
        raise ConfigError(
            f"workflow: {place} reads steps.{name}.output.{path[2]}, a field its schema "
            f"does not give (it gives: {', '.join(sorted(fields)) or 'none'})"
        )


def _schema_fields(schema: Any) -> frozenset[str] | None:
    """The fields an object schema allows, when it says all of them."""
    if not isinstance(schema, Mapping):
        return None
    inner = schema.get("schema") if "schema" in schema and "type" not in schema else schema
    if not isinstance(inner, Mapping) or not isinstance(inner.get("properties"), Mapping):
        return None
    if inner.get("additionalProperties", False) is not False:
        return None
    return frozenset(inner["properties"])


def _template_paths(step: Step, key: str) -> list[tuple[str, ...]]:
    """What a template reads of `steps`: each `steps.NAME.output.FIELD...` (or
    `steps["NAME"]`) as the names after `steps`."""
    text = step.options[key]
    if not isinstance(text, str):
        raise ConfigError(f"workflow: steps.{step.name}.{key} must be a string")
    import jinja2  # here, not at the top: a run without a workflow never needs it
    from jinja2 import nodes

    try:
        tree = _parser().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"workflow: steps.{step.name}.{key} is not a valid template (line {exc.lineno}): "
            f"{exc.message}"
        ) from exc
    lookups: list[Any] = list(tree.find_all((nodes.Getattr, nodes.Getitem)))
    inner = {id(node.node) for node in lookups}
    paths = []
    for node in lookups:
        if id(node) not in inner:  # the outermost of a chain: steps.a.output.label
            path = _steps_path(node)
            if path:
                paths.append(path)
    return paths


@functools.cache
def _parser() -> jinja2.Environment:
    """Parsing only: templates are rendered in prepare's sandbox."""
    import jinja2

    return jinja2.Environment()


def _steps_path(node: Any) -> tuple[str, ...] | None:
    """The names after `steps` in a chain of attributes and constant subscripts."""
    from jinja2 import nodes

    names: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            names.append(node.attr)
        elif isinstance(node.arg, nodes.Const):
            names.append(str(node.arg.value))
        else:
            names.clear()  # steps[x]...: a computed name, only what follows it is known
        node = node.node
    if isinstance(node, nodes.Name) and node.name == "steps" and names:
        return tuple(reversed(names))
    return None
