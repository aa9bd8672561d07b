"""Operations staff use the Django admin, signing in by phone number."""

import pytest

from backend.accounts.models import User

pytestmark = pytest.mark.django_db


def test_staff_sign_in_with_phone_and_find_users_by_phone(client):
    User.objects.create_user("+8613800000099", "ops-password-1", display_name="Ops", is_staff=True, is_superuser=True)
    User.objects.create_user("+8613812345678", display_name="Customer Ma")
    response = client.post("/admin/login/?next=/admin/", {"username": "138 0000 0099", "password": "ops-password-1"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    listing = client.get("/admin/accounts/user/", {"q": "+8613812345678"})
    assert listing.status_code == 200
    assert "Customer Ma" in listing.content.decode()
    assert "+86138****5678" in listing.content.decode()  # rows show masked numbers


def test_customers_cannot_use_the_admin(client):
    User.objects.create_user("+8613812345678", "customer-pass-1", display_name="Customer")
    response = client.post("/admin/login/", {"username": "+8613812345678", "password": "customer-pass-1"})
    assert response.status_code == 200  # the form is shown again with an error
    assert client.get("/admin/").status_code == 302
