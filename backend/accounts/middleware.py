"""Bearer-token authentication for HTTP (GraphQL). The WebSocket authenticates in its first frame."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from backend.core.errors import DomainError

from .services import authenticate_access_token
from .tokens import TokenInvalid


class BearerTokenMiddleware:
    """Sets request.user/request.device from `Authorization: Bearer <access token>`.

    A bad token does not fail the request here: the request continues anonymous with `auth_error` set,
    so a public field still works and a protected one reports exactly why (TOKEN_EXPIRED, TOKEN_INVALID).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.device = None
        request.auth_error = None
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, token = header.partition(" ")
            request.user = AnonymousUser()
            if scheme.lower() != "bearer" or not token.strip():
                request.auth_error = TokenInvalid("Use 'Authorization: Bearer <access token>'.")
            else:
                try:
                    request.user, request.device = authenticate_access_token(token.strip())
                except DomainError as exc:
                    request.auth_error = exc
        elif not getattr(request, "user", None) or not request.user.is_authenticated:
            request.user = AnonymousUser()
        elif request.path.startswith("/graphql"):
            # The admin's session cookie must not authenticate API calls.
            request.user = AnonymousUser()
        return self.get_response(request)
