from django.contrib import admin
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
