"""Domain errors with stable codes.

Services raise these; GraphQL mutations render them as payload errors, the WebSocket consumer as error
frames. The code is the contract with the phones: never rename one, add new ones instead.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path


class DomainError(Exception):
    """An expected failure a client can act on."""

    code = "INVALID"
    default_message = "The request is invalid."

    def __init__(self, message: str | None = None, *, code: str | None = None, field: str | None = None,
                 **details: object) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        self.field = field
        self.details = details
        super().__init__(self.message)

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationFailed(DomainError):
    code = "INVALID"


class NotAuthenticated(DomainError):
    code = "UNAUTHENTICATED"
    default_message = "Sign in first."


class PermissionDenied(DomainError):
    code = "FORBIDDEN"
    default_message = "You may not do that."


class NotFound(DomainError):
    """Also used for objects that exist but are not the caller's: never leak existence."""

    code = "NOT_FOUND"
    default_message = "Not found."


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    default_message = "Too many attempts. Try again later."

    def __init__(self, message: str | None = None, *, retry_after: int = 60, **kw: object) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Conflict(DomainError):
    code = "CONFLICT"
    default_message = "The request conflicts with the current state."


_SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def camel_case_field(field: str | None) -> str | None:
    """An error's `field` as clients see it everywhere (GraphQL and socket frames): camelCase, each dotted
    segment converted (`attachment.mime_type` → `attachment.mimeType`); ids and other segments untouched."""
    if not field:
        return field
    return ".".join(
        re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part) if _SNAKE.match(part) else part
        for part in field.split(".")
    )


# --- the codes an app declares (for its GraphQL error-code enum) ------------------------------------------

_CODE_SHAPE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


def declared_codes(package: str) -> set[str]:
    """Every error code an app's code declares: the `code` of each DomainError subclass
    defined in the package, and each literal `code="…"` passed when raising one (DomainError takes a code per
    instance). Read from the package's source, so a new code is in the enum without being listed anywhere."""
    found: set[str] = set()
    for error in _subclasses(DomainError):
        if error.__module__ == package or error.__module__.startswith(package + "."):
            found.add(error.code)
    root = Path(importlib.import_module(package).__file__).parent
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts or "tests" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for value in _code_literals(node):
                if _CODE_SHAPE.match(value):
                    found.add(value)
    return found


def _code_literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Call):
        return [k.value.value for k in node.keywords
                if k.arg == "code" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)]
    if isinstance(node, ast.ClassDef):
        return [stmt.value.value for stmt in node.body
                if isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == ["code"]
                and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)]
    return []


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out
