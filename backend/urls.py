from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.http import JsonResponse
from django.urls import path

from backend.core.graphql import QuanziGraphQLView


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("graphql/", QuanziGraphQLView.as_view(), name="graphql"),
    path("healthz", healthz),
]

if settings.DEBUG:
    # GraphiQL's assets (and the admin's) under Daphne in development; production serves STATIC_ROOT itself.
    urlpatterns += staticfiles_urlpatterns()
