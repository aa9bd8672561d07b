"""KYC identity verification: the ID number is checked (GB 11643 check character), only its keyed blind index
is kept, and the KYC level rises to verified."""

from __future__ import annotations

import pytest
from django.db import connection

from backend.accounts import services
from backend.accounts.models import User, id_number_index, normalize_id_number

pytestmark = pytest.mark.django_db

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(body17: str) -> str:
    """A well-formed resident ID number for 17 digits (the check character computed independently)."""
    return body17 + "10X98765432"[sum(int(d) * w for d, w in zip(body17, _WEIGHTS, strict=True)) % 11]


def all_database_text() -> str:
    """Every row of every table, as text: what someone reading the database would see."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_verifying_an_id_number_keeps_only_its_blind_index_and_raises_kyc():
    user = User.objects.create_user("+8613800000001", display_name="Li", kyc_level=User.KycLevel.BASIC)
    number = id_number("11010519491231002")
    verified = services.record_identity_verification(user=user, id_number=number.lower())
    user.refresh_from_db()
    assert user.kyc_level == User.KycLevel.VERIFIED == verified.kyc_level
    assert user.id_number_index == id_number_index(number) and len(user.id_number_index) == 64
    assert number not in all_database_text() and number.lower() not in all_database_text()


def test_verification_never_lowers_a_higher_kyc_level():
    user = User.objects.create_user("+8613800000002", display_name="Wang", kyc_level=User.KycLevel.FULL)
    services.record_identity_verification(user=user, id_number=id_number("44030419900101123"))
    user.refresh_from_db()
    assert user.kyc_level == User.KycLevel.FULL and user.id_number_index


@pytest.mark.parametrize("bad", ["", "123", "11010519491231002", "1101051949123100X2", "１１０１０５１９４９１２３１００２X",
                                 None, 110105194912310021])
def test_malformed_or_wrong_check_character_is_refused(bad):
    user = User.objects.create_user("+8613800000003", display_name="Zhao", kyc_level=User.KycLevel.BASIC)
    good = id_number("11010519491231002")
    if bad == "11010519491231002":
        bad = good[:17] + ("0" if good[17] != "0" else "1")  # wrong check character
    with pytest.raises(services.IdNumberInvalid):
        services.record_identity_verification(user=user, id_number=bad)
    user.refresh_from_db()
    assert (user.kyc_level, user.id_number_index) == (User.KycLevel.BASIC, "")


def test_normalization_accepts_spaces_and_lower_case_x():
    number = next(id_number(f"1101051949123100{d}") for d in range(10)
                  if id_number(f"1101051949123100{d}").endswith("X"))
    assert normalize_id_number(" " + number[:6] + " " + number[6:].lower()) == number


def test_operations_verify_identity_in_the_admin_without_the_number_being_stored(client):
    ops = User.objects.create_user("+8613800000099", "ops-password-1", display_name="Ops", is_staff=True,
                                   is_superuser=True)
    customer = User.objects.create_user("+8613812345678", display_name="Customer Ma", kyc_level=1)
    client.force_login(ops)
    number = id_number("32010219800514241")
    url = f"/admin/accounts/user/{customer.pk}/change/"
    form = {"display_name": "Customer Ma", "avatar_url": "", "role": "customer", "kyc_level": 1,
            "is_active": "on", "verified_id_number": number}
    bad = client.post(url, {**form, "verified_id_number": number[:17] + "Z"})
    assert bad.status_code == 200 and "not a valid resident ID number" in bad.content.decode()
    response = client.post(url, form)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.kyc_level == User.KycLevel.VERIFIED
    assert customer.id_number_index == id_number_index(number)
    assert number not in all_database_text()  # not in the user row, nor in the admin audit log
