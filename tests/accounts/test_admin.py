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


def test_admin_sign_in_is_rate_limited_per_phone_and_per_address(client, settings):
    settings.QUANZI = {**settings.QUANZI, "LOGIN_PER_PHONE_PER_HOUR": 3, "LOGIN_PER_IP_PER_HOUR": 5}
    User.objects.create_user("+8613800000099", "ops-password-1", display_name="Ops", is_staff=True, is_superuser=True)

    def attempt(phone, password, ip):
        return client.post("/admin/login/", {"username": phone, "password": password}, REMOTE_ADDR=ip)

    for _ in range(3):
        assert "Too many sign-in attempts" not in attempt("+8613800000099", "guess-x", "10.1.1.1").content.decode()
    # The phone's allowance is spent: even the right password from another address is refused now.
    blocked = attempt("+8613800000099", "ops-password-1", "10.2.2.2")
    assert blocked.status_code == 200 and "Too many sign-in attempts" in blocked.content.decode()
    assert client.get("/admin/").status_code == 302
    # One address guessing many phones runs into its own limit.
    for i in range(5):
        attempt(f"+86138000001{i:02d}", "guess-x", "10.3.3.3")
    assert "Too many sign-in attempts" in attempt("+8613800000150", "guess-x", "10.3.3.3").content.decode()
