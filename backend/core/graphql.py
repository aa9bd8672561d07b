"""GraphQL building blocks shared by every app's schema.py.

- `Error` and `BaseMutation`: expected failures come back in the payload's `errors` with a stable code
  (the Saleor convention); top-level errors are only for unauthenticated calls, bad documents and bugs.
- `require_user`: the one way a resolver asks "who is calling".
- Validation rules: depth, alias count and a cost estimate, checked before anything executes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import graphene
from django.conf import settings
from django.http import HttpResponseBadRequest
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene.validation import depth_limit_validator
from graphene_django.views import GraphQLView, HttpError
from graphql.language import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    VariableNode,
)
from graphql.validation import specified_rules

from graphql import GraphQLError, ValidationRule

from .errors import DomainError, NotAuthenticated, declared_codes
from .pagination import MAX_PAGE_SIZE  # noqa: F401  (re-exported for schema modules)

log = logging.getLogger("quanzi.graphql")



# --- payload errors: one GraphQL enum of codes per app ------------------------------------------------


@dataclass(frozen=True)
class AppErrors:
    packages: tuple[str, ...]
    codes: frozenset[str]
    error_type: type[graphene.ObjectType]


_app_errors: list[AppErrors] = []
CORE_PACKAGE = "backend.core"


def _error_type(prefix: str, codes: set[str], description: str) -> type[graphene.ObjectType]:
    enum = graphene.Enum(
        f"{prefix}ErrorCode",
        [(code, code) for code in sorted(codes)],
        description=description,
    )
    return type(f"{prefix}Error", (graphene.ObjectType,), {
        "__doc__": "An expected failure. `code` is stable; `field` names the input at fault, when one is.",
        "field": graphene.String(description="The input field at fault, if any (camelCase path)."),
        "code": graphene.Field(enum, required=True, description="Stable machine-readable code."),
        "message": graphene.String(required=True, description="Human-readable explanation."),
    })


def register_app_errors(prefix: str, package: str, *, include: tuple[str, ...] = ()) -> type[graphene.ObjectType]:
    """Give an app's mutations a `<prefix>Error` payload type whose `code` is the `<prefix>ErrorCode` enum:
    the generic core codes plus every code the app (and the apps in `include`, whose services it calls)
    declares (core.errors.declared_codes). One call at the top of the app's schema.py, before its mutations.
    """
    codes = declared_codes(CORE_PACKAGE)
    for name in (package, *include):
        codes.update(declared_codes(name))
    registered = AppErrors(packages=(package,), codes=frozenset(codes), error_type=_error_type(
        prefix, codes, f"Codes of {prefix} mutation errors (values are the code strings; never renamed)."))
    _app_errors.append(registered)
    return registered.error_type


def app_errors_for(module: str) -> AppErrors:
    for registered in _app_errors:
        if any(module == p or module.startswith(p + ".") for p in registered.packages):
            return registered
    return _core_errors()


@functools.cache
def _core_errors() -> AppErrors:
    """Mutations outside a registered app (none in the schema today) get the generic codes only."""
    codes = declared_codes(CORE_PACKAGE)
    return AppErrors(packages=(CORE_PACKAGE,), codes=frozenset(codes),
                     error_type=_error_type("", codes, "Generic error codes."))


def registered_app_errors() -> list[AppErrors]:
    return list(_app_errors)


class UndeclaredErrorCode(Exception):
    """A mutation raised a code its app's enum does not have (see register_app_errors)."""


class BaseMutation(graphene.Mutation):
    """Subclasses implement `perform(cls, root, info, **kwargs) -> dict` and declare their payload fields.

    `errors` is a list of the app's `<App>Error` (its code an enum built from the app's declared codes)."""

    class Meta:
        abstract = True

    @classmethod
    def __init_subclass_with_meta__(cls, **options):
        if "errors" not in cls.__dict__:
            cls.errors = graphene.List(graphene.NonNull(app_errors_for(cls.__module__).error_type), required=True)
        super().__init_subclass_with_meta__(**options)

    @classmethod
    def mutate(cls, root, info, **kwargs):
        try:
            result = cls.perform(root, info, **kwargs) or {}
        except DomainError as exc:
            if isinstance(exc, NotAuthenticated):
                raise auth_error(exc) from exc
            return cls(errors=[cls.render_error(exc)])
        return cls(errors=[], **result)

    @classmethod
    def render_error(cls, exc: DomainError) -> dict:
        code = exc.code
        if code not in app_errors_for(cls.__module__).codes:
            if settings.QUANZI.get("STRICT_ERROR_CODES", settings.DEBUG):
                raise UndeclaredErrorCode(f"{cls.__name__} raised {code!r}, not in its app's error-code enum")
            log.error("%s raised undeclared error code %s; sent as INVALID", cls.__name__, code)
            code = "INVALID"
        return {"field": exc.field, "code": code, "message": exc.message}

    @classmethod
    def perform(cls, root, info, **kwargs) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


def auth_error(exc: DomainError | None = None) -> GraphQLError:
    exc = exc or NotAuthenticated()
    return GraphQLError(exc.message, extensions={"code": exc.code})


def require_user(info):
    """The signed-in user, or a top-level UNAUTHENTICATED (or TOKEN_EXPIRED/TOKEN_INVALID) error."""
    request = info.context
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise auth_error(getattr(request, "auth_error", None))
    return user


def require_device(info):
    require_user(info)
    return info.context.device


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# --- validation rules -------------------------------------------------------------------------


def _collect_fields(selection_set, fragments, visited=None):
    visited = visited if visited is not None else set()
    for selection in selection_set.selections if selection_set else []:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _collect_fields(selection.selection_set, fragments, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visited or name not in fragments:
                continue
            visited.add(name)
            yield from _collect_fields(fragments[name].selection_set, fragments, visited)


def _page_size(field: FieldNode, variables: dict) -> int:
    for argument in field.arguments or []:
        if argument.name.value in {"first", "last", "limit"}:
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(1, min(int(value.value), MAX_PAGE_SIZE))
            if isinstance(value, VariableNode):
                return MAX_PAGE_SIZE  # unknown at validation time: assume the cap
    return 1


def _cost(selection_set, fragments, multiplier: int, depth: int = 0) -> int:
    if depth > 50:
        return 0
    total = 0
    for field in _collect_fields(selection_set, fragments):
        if field.name.value.startswith("__"):
            continue
        total += multiplier
        if field.selection_set:
            total += _cost(field.selection_set, fragments, multiplier * _page_size(field, {}), depth + 1)
    return total


class QueryCostRule(ValidationRule):
    """Reject documents whose estimated cost (fields × page sizes) or alias count exceeds the limits."""

    def enter_document(self, node, *args):
        fragments = {d.name.value: d for d in node.definitions if d.kind == "fragment_definition"}
        max_cost = settings.QUANZI["GRAPHQL_MAX_COST"]
        max_aliases = settings.QUANZI["GRAPHQL_MAX_ALIASES"]
        aliases = sum(1 for n in _walk(node) if isinstance(n, FieldNode) and n.alias is not None)
        if aliases > max_aliases:
            self.report_error(
                GraphQLError(f"Too many aliases ({aliases} > {max_aliases}).", extensions={"code": "TOO_MANY_ALIASES"})
            )
        for definition in node.definitions:
            if isinstance(definition, OperationDefinitionNode):
                cost = _cost(definition.selection_set, fragments, 1)
                if cost > max_cost:
                    self.report_error(
                        GraphQLError(f"Query is too expensive ({cost} > {max_cost}).",
                                     extensions={"code": "QUERY_TOO_COMPLEX"})
                    )


def _walk(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for key in current.keys:
            value = getattr(current, key, None)
            if isinstance(value, list | tuple):
                stack.extend(v for v in value if hasattr(v, "keys"))
            elif hasattr(value, "keys") and not isinstance(value, dict):
                stack.append(value)


class NoIntrospection(ValidationRule):
    """`__schema` and `__type` only with DEBUG. `__typename` is not introspection of the schema: Apollo and
    Relay clients add it to every selection, so refusing it (as graphene's DisableIntrospection does) breaks them."""

    def enter_field(self, node: FieldNode, *_args):
        if node.name.value in {"__schema", "__type"}:
            self.report_error(GraphQLError(f"Cannot query '{node.name.value}': introspection is disabled.", node))


def validation_rules() -> list[type[ValidationRule]]:
    rules: list = list(specified_rules)
    rules.append(depth_limit_validator(max_depth=settings.QUANZI["GRAPHQL_MAX_DEPTH"]))
    rules.append(QueryCostRule)
    if not settings.DEBUG:
        rules.append(NoIntrospection)
    return rules


def error_code_for(error: Any) -> str:
    if isinstance(error, GraphQLError):
        if error.extensions and error.extensions.get("code"):
            return error.extensions["code"]
        if error.__class__.__name__ == "GraphQLSyntaxError":
            return "GRAPHQL_PARSE_FAILED"
        if error.original_error is None and "exceeds maximum operation depth" in error.message:
            return "QUERY_TOO_DEEP"
        if not error.path and not isinstance(error.original_error, DomainError):
            # before execution: validation, or a variable of the wrong type (which carries the coercion error)
            return "GRAPHQL_VALIDATION_FAILED"
        if isinstance(error.original_error, DomainError):
            return error.original_error.code
        if error.original_error is not None:
            return "INTERNAL_ERROR"
        return "BAD_USER_INPUT"
    return "BAD_REQUEST"


# --- the HTTP endpoint -------------------------------------------------------------------------



@method_decorator(csrf_exempt, name="dispatch")
class QuanziGraphQLView(GraphQLView):
    """POST-only JSON GraphQL with bearer tokens; no batching; GraphiQL and introspection only with DEBUG.

    Cookies play no part in authentication (see accounts.middleware), so CSRF protection is unnecessary.
    """

    batch = False
    graphiql_template = "core/graphiql.html"  # assets from our own static files, never a CDN

    def __init__(self, **kwargs):
        kwargs.setdefault("graphiql", settings.DEBUG)
        kwargs.setdefault("validation_rules", validation_rules())
        super().__init__(**kwargs)

    def parse_body(self, request):
        data = super().parse_body(request)
        if request.method == "POST" and isinstance(data, dict) and "query" in data and not isinstance(
            data.get("query"), str
        ):
            raise HttpError(HttpResponseBadRequest("The query must be a string."))
        return data

    @staticmethod
    def format_error(error):
        formatted = error.formatted if isinstance(error, GraphQLError) else {"message": str(error)}
        code = error_code_for(error)
        if code == "INTERNAL_ERROR":
            log.error("GraphQL resolver failed", exc_info=getattr(error, "original_error", None))
            if not settings.DEBUG:
                formatted["message"] = "Internal error."
        formatted.setdefault("extensions", {})
        formatted["extensions"] = {**(formatted.get("extensions") or {}), "code": code}
        return formatted
