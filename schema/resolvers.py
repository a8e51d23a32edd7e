"""Plain attributes resolve with a getattr, not strawberry's resolver pipeline.

Strawberry gives every field a resolver that builds its Info, converts arguments and runs
field extensions; graphql-core then builds an Info of its own and completes the value
through a generic recursion. For a field that is a plain attribute — no resolver,
arguments, permissions, directives or field extensions — neither is needed. Such a field
resolves with a getattr of its Python name; when its type is a scalar or an enum, or a
list of them, ``complete_plain_leaf`` also coerces the value in one step (the execution
context calls it), and anything unusual (a null where the type forbids it, a value the
scalar refuses) goes the generic way, so errors read exactly as before.
"""

import inspect
from collections.abc import Callable
from dataclasses import MISSING
from operator import attrgetter
from typing import Any, Final

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types import Info
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import StrawberryMaybe, StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

# Returned by a leaf completer when the generic path must handle the value.
GENERIC: Final = object()
_COMPLETE: Final = "hub.complete_plain_leaf"

Complete = Callable[[Any], Any]


def _attribute(name: str) -> Callable[[Any, GraphQLResolveInfo], Any]:
    get = attrgetter(name)

    def resolve(source: Any, info: GraphQLResolveInfo) -> Any:
        return get(source)

    return resolve


def _is_plain(field: StrawberryField) -> bool:
    return (
        field.base_resolver is None
        and not field.arguments
        and not field.permission_classes
        and not field.extensions
        and not field.directives
    )


def _unwrap(t: GraphQLOutputType) -> tuple[GraphQLOutputType, bool]:
    if isinstance(t, GraphQLNonNull):
        return t.of_type, False
    return t, True


def _leaf_completer(name: str, graphql_type: GraphQLOutputType) -> Complete | None:
    get = attrgetter(name)
    outer, nullable = _unwrap(graphql_type)
    if is_leaf_type(outer):
        leaf: GraphQLLeafType = outer  # type: ignore[assignment]

        def complete(source: Any) -> Any:
            value = get(source)
            if value is None:
                return None if nullable else GENERIC
            coerced = leaf.coerce_output_value(value)
            return GENERIC if coerced is Undefined or coerced is None else coerced

        return complete
    if not isinstance(outer, GraphQLList):
        if not nullable:
            return None

        def complete_absent(source: Any) -> Any:
            # An absent optional object (a result's `error`, say) is null whatever its
            # selection asks; a present one needs graphql-core's completion.
            return None if get(source) is None else GENERIC

        return complete_absent
    inner, items_nullable = _unwrap(outer.of_type)
    if not is_leaf_type(inner):
        return None
    item: GraphQLLeafType = inner  # type: ignore[assignment]

    def complete_list(source: Any) -> Any:
        values = get(source)
        if values is None:
            return None if nullable else GENERIC
        if not isinstance(values, list | tuple):
            return GENERIC
        out: list[Any] = []
        for value in values:
            if value is None:
                if not items_nullable:
                    return GENERIC
                out.append(None)
                continue
            coerced = item.coerce_output_value(value)
            if coerced is Undefined or coerced is None:
                return GENERIC
            out.append(coerced)
        return out

    return complete_list


Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _base(graphql_type: GraphQLInputType) -> GraphQLInputType:
    return graphql_type.of_type if isinstance(graphql_type, GraphQLNonNull) else graphql_type


def _convertible(graphql_type: GraphQLInputType, open_types: frozenset[str] = frozenset()) -> bool:
    """Whether strawberry's conversion of this input needs no more than ``_converter``:
    scalars (other than relay's GlobalID) and enums as they are, lists copied, input
    objects built from their fields; not ``from_input`` types or ``Maybe``. An input type
    may hold itself: one already being looked at counts as convertible on this path."""
    t = _base(graphql_type)
    if isinstance(t, GraphQLScalarType):
        return t.name != "GlobalID"
    if isinstance(t, GraphQLEnumType):
        return True  # strawberry's enum types coerce straight to the Python enum member
    if isinstance(t, GraphQLList):
        return _convertible(t.of_type, open_types)
    if not isinstance(t, GraphQLInputObjectType):
        return False
    if t.name in open_types:
        return True
    definition = (t.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryObjectDefinition) or definition.from_input:
        return False
    for input_field in t.fields.values():
        field = (input_field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(field, StrawberryField) or isinstance(field.type, StrawberryMaybe):
            return False
        if not _convertible(input_field.type, open_types | {t.name}):
            return False
    return True


def _converter(graphql_type: GraphQLInputType, objects: dict[str, Convert]) -> Convert:
    """The conversion of a ``_convertible`` input, as strawberry's ``convert_argument``."""
    t = _base(graphql_type)
    if isinstance(t, GraphQLList):
        item = _converter(t.of_type, objects)
        if item is _same:
            return lambda values: None if values is None else list(values)
        return lambda values: None if values is None else [item(v) for v in values]
    if isinstance(t, GraphQLInputObjectType):
        return objects.get(t.name) or _input_object(t, objects)
    return _same


def _input_object(graphql_type: GraphQLInputObjectType, objects: dict[str, Convert]) -> Convert:
    definition = graphql_type.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    cls = definition.origin
    # As strawberry does: a field without a default is None unless given.
    preset = {
        f.python_name: None
        for f in definition.fields
        if f.default_value is MISSING and f.default_factory is MISSING
    }
    fields: dict[str, tuple[str, Convert]] = {}

    def build(value: Any) -> Any:
        if value is None:
            return None
        kwargs = dict(preset)
        for name, item in value.items():
            python_name, convert = fields[name]
            kwargs[python_name] = item if convert is _same else convert(item)
        return cls(**kwargs)

    objects[graphql_type.name] = build  # before the fields: they may hold this type
    for graphql_name, input_field in graphql_type.fields.items():
        field = input_field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
        fields[graphql_name] = (field.python_name, _converter(input_field.type, objects))
    return build


def _arguments(field: GraphQLField) -> dict[str, tuple[str, Convert]] | None:
    """GraphQL argument name -> (Python name, converter), when every argument has one."""
    found: dict[str, tuple[str, Convert]] = {}
    for graphql_name, argument in field.args.items():
        definition = (argument.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryArgument) or not _convertible(argument.type):
            return None
        if isinstance(definition.type, StrawberryMaybe):
            return None
        found[graphql_name] = (definition.python_name, _converter(argument.type, {}))
    return found


def _direct(
    field: StrawberryField, arguments: dict[str, tuple[str, Convert]], info_class: type[Info]
) -> Callable[..., Any] | None:
    """Calls the resolver function itself, its arguments converted as strawberry would;
    for resolvers that take no root or parent and have no field extensions."""
    resolver = field.base_resolver
    if (
        resolver is None
        or field.extensions
        or field.permission_classes
        or field.directives
        or resolver.root_parameter is not None
        or resolver.parent_parameter is not None
        or not inspect.isfunction(resolver.wrapped_func)
    ):
        return None
    func: Callable[..., Any] = resolver.wrapped_func
    takes_self = resolver.self_parameter is not None
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    def resolve(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        kwargs = {}
        for name, value in args.items():
            python_name, convert = arguments[name]
            kwargs[python_name] = value if convert is _same else convert(value)
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=field)
        return func(source, **kwargs) if takes_self else func(**kwargs)

    return resolve


def plain_leaf(field: GraphQLField) -> Complete | None:
    """The one-step completer of a plain scalar/enum (list) field, if it is one."""
    extensions = field.extensions
    return extensions.get(_COMPLETE) if extensions else None


def use_attribute_resolvers(schema: strawberry.Schema) -> int:
    """Swap in getattr resolvers for the plain fields of ``schema``; how many were swapped."""
    swapped = 0
    subscription = schema._schema.subscription_type
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field in graphql_type.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField):
                continue
            if not _is_plain(definition):
                arguments = _arguments(field)
                direct = (
                    None
                    if arguments is None or graphql_type is subscription
                    else _direct(definition, arguments, schema.config.info_class)
                )
                if direct is not None:
                    field.resolve = direct
                    swapped += 1
                continue
            field.resolve = _attribute(definition.python_name)
            completer = _leaf_completer(definition.python_name, field.type)
            if completer is not None:
                field.extensions = {**field.extensions, _COMPLETE: completer}
            swapped += 1
    return swapped
