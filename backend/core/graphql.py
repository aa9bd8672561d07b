"""GraphQL building blocks shared by every app's schema.py.

- `Error` and `BaseMutation`: expected failures come back in the payload's `errors` with a stable code
  (the Saleor convention); top-level errors are only for unauthenticated calls, bad documents and bugs.
- `require_user`: the one way a resolver asks "who is calling".
- Validation rules: depth, alias count and a cost estimate, checked before anything executes.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

import graphene
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponseBadRequest, HttpResponseNotAllowed
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene_django.settings import graphene_settings
from graphene_django.views import GraphQLView, HttpError
from graphql.execution import ExecutionResult
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
)
from graphql.type import get_named_type, is_list_type, is_non_null_type
from graphql.validation import specified_rules

from graphql import GraphQLError, ValidationRule, execute, get_operation_ast, parse, validate, validate_schema

from . import clientip
from .errors import DomainError, NotAuthenticated, camel_case_field, declared_codes
from .jsonlimits import MAX_JSON_NESTING, nesting_exceeds
from .pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

PAGE_ARGUMENTS = frozenset({"first", "last", "limit"})

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
            return cls(errors=[cls.render_error(exc)], **cls.error_fields(exc))
        return cls(errors=[], **result)

    @classmethod
    def render_error(cls, exc: DomainError) -> dict:
        code = exc.code
        if code not in app_errors_for(cls.__module__).codes:
            if settings.QUANZI.get("STRICT_ERROR_CODES", settings.DEBUG):
                raise UndeclaredErrorCode(f"{cls.__name__} raised {code!r}, not in its app's error-code enum")
            log.error("%s raised undeclared error code %s; sent as INVALID", cls.__name__, code)
            code = "INVALID"
        return {"field": camel_case_field(exc.field), "code": code, "message": exc.message}

    @classmethod
    def perform(cls, root, info, **kwargs) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def error_fields(cls, exc: DomainError) -> dict:
        """Payload fields to fill next to `errors` for this error (e.g. a risk warning's token). Default none."""
        return {}


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
    """The caller's address for per-IP limits: X-Forwarded-For only through a trusted proxy (core.clientip)."""
    return clientip.from_request(request)


# --- validation rules -------------------------------------------------------------------------
#
# Depth and cost are measured in one pass that is linear in the document: every fragment is measured once
# (memoised by name) and a spread reuses the result, so a document where each fragment spreads the previous
# one twice costs one visit per selection, not 2^levels. The measure stops at the first limit passed. Every
# spread counts as written (two spreads of one fragment cost twice): a client never needs that, and it keeps
# the memo a number per fragment.


class LimitPassed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class DocumentMeasure:
    """Depth (nesting of field selections) and cost (fields × page sizes) of the operations of a document.

    `visited` counts the selections looked at: the validation's work, which tests read to prove it is linear.
    """

    def __init__(self, schema, document, *, max_depth: int, max_cost: int, max_nesting: int):
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.max_depth, self.max_cost, self.max_nesting = max_depth, max_cost, max_nesting
        self.cap = max_cost + 1  # costs saturate here: a number past the limit is as good as any larger one
        self.memo: dict[str, tuple[int, int]] = {}
        self.in_progress: set[str] = set()
        self.visited = 0

    def operation(self, definition: OperationDefinitionNode) -> tuple[int, int]:
        root = self.schema.get_root_type(definition.operation)
        return self._selections(definition.selection_set, root, depth=0, nesting=0)

    def _selections(self, selection_set, parent, *, depth: int, nesting: int) -> tuple[int, int]:
        """(cost per unit of multiplier, depth below) of a selection set; `depth` and `nesting` say where it
        sits in the operation being measured, so a limit passed anywhere stops the measure at once."""
        if nesting > self.max_nesting:
            raise LimitPassed("QUERY_TOO_DEEP", f"Selections nest more than {self.max_nesting} levels.")
        cost, below = 0, 0
        for selection in selection_set.selections if selection_set else ():
            self.visited += 1
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name.startswith("__"):
                    continue
                cost += 1
                if selection.selection_set:
                    if depth + 1 > self.max_depth:
                        raise LimitPassed("QUERY_TOO_DEEP", f"The query is deeper than {self.max_depth} levels.")
                    definition = _field_definition(parent, name)
                    child = get_named_type(definition.type) if definition else None
                    sub_cost, sub_depth = self._selections(
                        selection.selection_set, child, depth=depth + 1, nesting=nesting + 1)
                    cost += _multiplier(selection, definition, parent) * sub_cost
                    below = max(below, 1 + sub_depth)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                scope = self.schema.get_type(condition.name.value) if condition else parent
                sub_cost, sub_depth = self._selections(selection.selection_set, scope, depth=depth,
                                                       nesting=nesting + 1)
                cost += sub_cost
                below = max(below, sub_depth)
            elif isinstance(selection, FragmentSpreadNode):
                sub_cost, sub_depth = self._fragment(selection.name.value, depth=depth, nesting=nesting)
                cost += sub_cost
                below = max(below, sub_depth)
            cost = min(cost, self.cap)
            if cost > self.max_cost:
                raise LimitPassed("QUERY_TOO_COMPLEX", f"The query is too expensive (more than {self.max_cost}).")
        return cost, below

    def _fragment(self, name: str, *, depth: int, nesting: int) -> tuple[int, int]:
        if name in self.memo:
            cost, below = self.memo[name]
            if depth + below > self.max_depth:
                raise LimitPassed("QUERY_TOO_DEEP", f"The query is deeper than {self.max_depth} levels.")
            return cost, below
        fragment = self.fragments.get(name)
        if fragment is None or name in self.in_progress:
            return 0, 0  # unknown fragments and cycles are reported by graphql-core's own rules
        self.in_progress.add(name)
        try:
            scope = self.schema.get_type(fragment.type_condition.name.value)
            self.memo[name] = self._selections(fragment.selection_set, scope, depth=depth, nesting=nesting + 1)
        finally:
            self.in_progress.discard(name)
        return self.memo[name]


def _field_definition(parent, name: str):
    fields = getattr(parent, "fields", None)
    return fields.get(name) if fields else None


def _multiplier(field: FieldNode, definition, parent) -> int:
    """How many times a field's sub-selection runs: the page asked for (a variable: the cap), else the
    field's declared default page size, else for a list without paging the cap; 1 for a single object.
    A connection's `edges` is the page its field already counted."""
    for argument in field.arguments or []:
        if argument.name.value in PAGE_ARGUMENTS:
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(1, min(int(value.value), MAX_PAGE_SIZE))
            return MAX_PAGE_SIZE  # a variable (unknown at validation time) or a bad literal
    if definition is None:
        return 1
    paging = [a for name, a in definition.args.items() if name in PAGE_ARGUMENTS]
    if paging:
        declared = [a.default_value for a in paging if isinstance(a.default_value, int)]
        return max(declared) if declared else DEFAULT_PAGE_SIZE
    field_type = definition.type.of_type if is_non_null_type(definition.type) else definition.type
    if is_list_type(field_type):
        if field.name.value == "edges" and getattr(parent, "name", "").endswith("Connection"):
            return 1
        return MAX_PAGE_SIZE
    return 1


class QueryLimitsRule(ValidationRule):
    """Reject documents deeper (QUERY_TOO_DEEP), costlier (QUERY_TOO_COMPLEX) or with more aliases
    (TOO_MANY_ALIASES) than the limits, measured once per fragment (see DocumentMeasure)."""

    def enter_document(self, node, *args):
        limits = settings.QUANZI
        max_aliases = limits["GRAPHQL_MAX_ALIASES"]
        aliases = sum(1 for n in _walk(node) if isinstance(n, FieldNode) and n.alias is not None)
        if aliases > max_aliases:
            self.report_error(
                GraphQLError(f"Too many aliases ({aliases} > {max_aliases}).", extensions={"code": "TOO_MANY_ALIASES"})
            )
        measure = DocumentMeasure(self.context.schema, node, max_depth=limits["GRAPHQL_MAX_DEPTH"],
                                  max_cost=limits["GRAPHQL_MAX_COST"], max_nesting=limits["GRAPHQL_MAX_NESTING"])
        try:
            for definition in node.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    measure.operation(definition)
        except LimitPassed as passed:
            self.report_error(GraphQLError(passed.message, extensions={"code": passed.code}))
        finally:
            last_measure.visited = measure.visited


# The work of the last measure on this thread (selections visited), for tests and debugging.
last_measure = threading.local()


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
    rules.append(QueryLimitsRule)
    if not settings.DEBUG:
        rules.append(NoIntrospection)
    return rules


def error_code_for(error: Any) -> str:
    if isinstance(error, GraphQLError):
        if error.extensions and error.extensions.get("code"):
            return error.extensions["code"]
        if error.__class__.__name__ == "GraphQLSyntaxError":
            return "GRAPHQL_PARSE_FAILED"
        if not error.path and not isinstance(error.original_error, DomainError):
            # before execution: validation, or a variable of the wrong type (which carries the coercion error)
            return "GRAPHQL_VALIDATION_FAILED"
        if isinstance(error.original_error, DomainError):
            return error.original_error.code
        if error.original_error is not None:
            return "INTERNAL_ERROR"
        return "BAD_USER_INPUT"
    return "BAD_REQUEST"


def document_size_problem(query: str) -> str | None:
    """Why a GraphQL document is too large to parse (characters, tokens, comments), or None."""
    limits = settings.QUANZI
    if len(query) > limits["GRAPHQL_MAX_DOCUMENT_CHARS"]:
        return f"The document is longer than {limits['GRAPHQL_MAX_DOCUMENT_CHARS']} characters."
    try:
        parse(query, no_location=True, max_lexical_tokens=limits["GRAPHQL_MAX_TOKENS"],
              max_comments=limits["GRAPHQL_MAX_TOKENS"])
    except GraphQLError as exc:
        if "contains more than" in exc.message:  # graphql-core's token and comment limits
            return f"The document has more than {limits['GRAPHQL_MAX_TOKENS']} tokens."
    return None  # syntax errors are reported by the real parse, with their location


class _DocumentCache:
    """Parsed documents that passed validation, by (text, schema, rules, limits): at most `size`, the least
    recently used dropped first. Only valid documents are kept (a client cannot fill it with refusals), each
    within the document limits; the AST is never changed by execution, so threads share it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> DocumentNode | None:
        with self._lock:
            document = self._entries.get(key)
            if document is not None:
                self._entries.move_to_end(key)
            return document

    def put(self, key: tuple, document: DocumentNode) -> None:
        with self._lock:
            self._entries[key] = document
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


VALIDATED_DOCUMENTS_KEPT = 256
_documents = _DocumentCache(VALIDATED_DOCUMENTS_KEPT)


def _limits_in_force() -> tuple:
    limits = settings.QUANZI
    return tuple(limits[name] for name in ("GRAPHQL_MAX_DOCUMENT_CHARS", "GRAPHQL_MAX_TOKENS", "GRAPHQL_MAX_DEPTH",
                                           "GRAPHQL_MAX_COST", "GRAPHQL_MAX_NESTING", "GRAPHQL_MAX_ALIASES"))


def forget_documents() -> None:
    """Drop the remembered documents (tests that change the limits or read `last_measure`)."""
    _documents.clear()


def _too_deep() -> HttpError:
    return HttpError(HttpResponseBadRequest(f"JSON nests deeper than {MAX_JSON_NESTING} levels."))


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
        if graphene_settings.ATOMIC_MUTATIONS:  # `execute_graphql_request` does not wrap mutations
            raise ImproperlyConfigured("GRAPHENE['ATOMIC_MUTATIONS'] is off here: each service owns its transaction.")

    def parse_body(self, request):
        if self.get_content_type(request) == "application/json" and nesting_exceeds(request.body):
            raise _too_deep()
        data = super().parse_body(request)
        if request.method == "POST" and isinstance(data, dict) and "query" in data and not isinstance(
            data.get("query"), str
        ):
            raise HttpError(HttpResponseBadRequest("The query must be a string."))
        return data

    @staticmethod
    def get_graphql_params(request, data):
        """`variables` may come as a JSON string (a form field, a query parameter, or a string in the JSON body),
        which graphene-django parses itself: its nesting is checked first too."""
        raw = request.GET.get("variables") or data.get("variables")
        if isinstance(raw, str) and nesting_exceeds(raw):
            raise _too_deep()
        return GraphQLView.get_graphql_params(request, data)

    def execute_graphql_request(self, request, data, query, variables, operation_name, show_graphiql=False):
        """A document this process has already parsed and validated is executed from `_documents`; a new one
        is refused if oversized before graphql-core parses it (DOCUMENT_TOO_LARGE: the parser's work and the
        AST it builds are bounded by the document's length and token count), then parsed and validated and,
        if valid, remembered. Phones send the same few documents over and over: parsing and validating one
        was about a third of the CPU of a moments page (bench/moments.py, docs/architecture.md)."""
        if not isinstance(query, str) or not query:
            return super().execute_graphql_request(request, data, query, variables, operation_name, show_graphiql)
        schema = self.schema.graphql_schema
        key = (query, id(schema), tuple(self.validation_rules), _limits_in_force())
        document = _documents.get(key)
        if document is None:
            problem = document_size_problem(query)
            if problem:
                return ExecutionResult(errors=[GraphQLError(problem, extensions={"code": "DOCUMENT_TOO_LARGE"})])
            schema_errors = validate_schema(schema)
            if schema_errors:
                return ExecutionResult(errors=schema_errors)
            try:
                document = parse(query)
            except GraphQLError as exc:
                return ExecutionResult(errors=[exc])
            errors = validate(schema, document, self.validation_rules, graphene_settings.MAX_VALIDATION_ERRORS)
            if errors:
                return ExecutionResult(errors=errors)
            _documents.put(key, document)
        operation = get_operation_ast(document, operation_name)
        if request.method.lower() == "get" and operation is not None and operation.operation != OperationType.QUERY:
            raise HttpError(HttpResponseNotAllowed(["POST"], f"Can only perform a {operation.operation.value} "
                                                             "operation from a POST request."))
        options = {"root_value": self.get_root_value(request), "context_value": self.get_context(request),
                   "variable_values": variables, "operation_name": operation_name,
                   "middleware": self.get_middleware(request)}
        if self.execution_context_class:
            options["execution_context_class"] = self.execution_context_class
        try:
            return execute(schema, document, **options)
        except Exception as exc:  # as graphene-django: reported as the request's error
            return ExecutionResult(errors=[exc])

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
