"""Compiling a ``Mapping`` into per-rule steps for one direction.

Everything that does not depend on the record is decided here, once: which key to read,
the split dotted paths, the bound transformer callables, the multi-value function and the
deferred multi-value of append targets. ``FieldMapper`` then only walks the steps.
Compilation errors are ``ConfigError``s naming the mapping file and the rule path, so the
loader uses this same code to validate a mapping at load time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmsync_pipelines.config.yaml_file import display_path
from crmsync_pipelines.errors import ConfigError
from crmsync_pipelines.mapping.instance import instance_timezone as instance_zone
from crmsync_pipelines.mapping.models import Direction, Mapping, MappingRule
from crmsync_pipelines.mapping.multivalue import MultiValueFn, compile_multi_value
from crmsync_pipelines.mapping.transformers import (
    CompiledTransformer,
    TransformerParamError,
    TransformerRegistry,
    UnknownTransformerError,
)

DIRECTIONS: tuple[Direction, ...] = ("crm_to_cc", "cc_to_crm")


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A field name, split once; ``parts`` is None for a plain key (the fast path)."""

    name: str
    parts: tuple[str, ...] | None

    @classmethod
    def of(cls, name: str) -> FieldPath:
        return cls(name, tuple(name.split(".")) if "." in name else None)


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    source: FieldPath | None
    target: FieldPath
    static: bool
    value: Any
    copy_value: bool
    transformers: tuple[tuple[str, CompiledTransformer], ...]
    relation_entity: str | None
    multi: MultiValueFn | None
    append: bool
    #: Daktela custom fields are lists on write: ``key`` for ``customFields.<key>`` (a scalar is
    #: wrapped), ``object`` for the whole ``customFields`` (each value wrapped), else None.
    custom_fields: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    direction: Direction
    steps: tuple[Step, ...]
    #: Append targets and the multi-value applied once after all rules (last config wins), and
    #: whether the target is a Daktela custom field (its value is wrapped into a list after it).
    deferred: tuple[tuple[FieldPath, MultiValueFn, bool], ...]
    file: str | None
    #: One closure per step (built by ``runner.build_runner``), in rule order.
    runners: tuple[Any, ...] = ()


def mapping_file_name(mapping: Mapping) -> str | None:
    return display_path(mapping.source_path) if mapping.source_path is not None else None


CUSTOM_FIELDS = "customFields"


def custom_field_kind(target: str, direction: Direction, file: str | None, where: str) -> str | None:
    """How a Daktela target under ``customFields`` is shaped (see ``Step.custom_fields``).

    Daktela stores every custom field as a list of values and refuses anything else with
    "Value must be an array" (daktela-v6-api.md §5.5), so a rule writing *inside* one value
    (``customFields.a.b``) is a ``ConfigError`` naming the rule.
    """
    if direction != "crm_to_cc" or not (target == CUSTOM_FIELDS or target.startswith(CUSTOM_FIELDS + ".")):
        return None
    if target == CUSTOM_FIELDS:
        return "object"
    if target.count(".") > 1:
        raise ConfigError(
            f"cc_field {target!r} writes inside a custom field, but a Daktela custom field holds a list of "
            f"values (write customFields.{target.split('.')[1]} instead)",
            file=file,
            path=f"{where}.cc_field",
        )
    return "key"


def compile_plan(
    mapping: Mapping, direction: str, registry: TransformerRegistry, *, instance_timezone: str | None = None
) -> Plan:
    """Compile ``mapping`` for ``direction``; raises ``ConfigError`` for rules that cannot run.

    ``instance_timezone`` is the Daktela instance's zone that ``from_tz``/``to_tz: instance``
    stand for (None: unknown, so records using it fail with a message saying so).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    checked: Direction = "crm_to_cc" if direction == "crm_to_cc" else "cc_to_crm"
    file = mapping_file_name(mapping)
    steps: list[Step] = []
    deferred: dict[str, tuple[FieldPath, MultiValueFn, bool]] = {}
    with instance_zone(instance_timezone):
        for index, rule in enumerate(mapping.mappings):
            steps.append(_compile_step(index, rule, checked, registry, file, deferred))
    from crmsync_pipelines.mapping.runner import build_runner  # runner imports Step from here

    return Plan(checked, tuple(steps), tuple(deferred.values()), file, tuple(build_runner(s) for s in steps))


def _compile_step(
    index: int,
    rule: MappingRule,
    checked: Direction,
    registry: TransformerRegistry,
    file: str | None,
    deferred: dict[str, tuple[FieldPath, MultiValueFn, bool]],
) -> Step:
    where = f"mappings[{index}]"
    target = rule.target_field(checked)
    if target is None:
        raise ConfigError(
            f"crm_field is required: it is the field this rule writes in {checked}", file=file, path=where
        )
    transformers: list[tuple[str, CompiledTransformer]] = []
    for t_index, spec in enumerate(rule.transformers):
        t_where = f"{where}.transformers[{t_index}]"
        try:
            transformers.append((spec.name, registry.compile(spec.name, spec.params)))
        except UnknownTransformerError as exc:
            raise ConfigError(str(exc), file=file, path=f"{t_where}.name") from None
        except TransformerParamError as exc:
            param_path = f"{t_where}.params" + (f".{exc.param}" if exc.param else "")
            raise ConfigError(f"{spec.name}: {exc}", file=file, path=param_path) from None
    multi = compile_multi_value(rule.multi_value) if rule.multi_value is not None else None
    target_path = FieldPath.of(target)
    custom = custom_field_kind(target, checked, file, where)
    if rule.append and multi is not None:
        deferred[target] = (target_path, multi, custom is not None)
    source = rule.source_field(checked)
    return Step(
        index=index,
        source=FieldPath.of(source) if source is not None else None,
        target=target_path,
        static=rule.has_value,
        value=rule.value,
        copy_value=isinstance(rule.value, (list, dict)),
        transformers=tuple(transformers),
        relation_entity=rule.relation.entity if rule.relation is not None else None,
        multi=None if rule.append else multi,
        append=rule.append,
        custom_fields=custom,
    )
