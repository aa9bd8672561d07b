"""Staff, client managers and service accounts carry a verified badge no customer can obtain or imitate."""

import pytest

from backend.accounts import names
from backend.accounts.ids import user_gid
from backend.advisors import services
from tests.chat.conftest import token_for
from tests.conftest import LOGIN, REQUEST_CODE, last_code

from .conftest import new_manager, new_user

pytestmark = pytest.mark.django_db

BADGE = "query($id: ID!) { node(id: $id) { ... on User { displayName isVerified } } }"


def test_badge_shows_for_bank_identities_only(gql):
    ann = new_user("Ann")
    mia = new_manager("Mia Wang")
    wallet = services.create_service_account(slug="wallet", name="Wallet", category="service")
    token = token_for(ann)
    badge = {u: gql(BADGE, {"id": user_gid(u)}, token=token)["data"]["node"]["isVerified"]
             for u in (ann, mia, wallet.user)}
    assert badge == {ann: False, mia: True, wallet.user: True}


@pytest.mark.parametrize("name", ["ICBC客服", "工商银行 official", "Ｓｅｃｕｒｉｔｙ", "client manager Li", "客户经理小王",
                                  "mia  wang", "M.I.A. WANG"])
def test_names_that_mimic_the_bank_or_its_staff_are_refused_at_sign_up(gql, sms_outbox, name):
    new_manager("Mia Wang")
    phone = "+8613911112222"
    gql(REQUEST_CODE, {"phone": phone})
    payload = gql(LOGIN.replace("$device: DeviceInput)", "$device: DeviceInput, $name: String)")
                  .replace("device: $device)", "device: $device, displayName: $name)"),
                  {"phone": phone, "code": last_code(sms_outbox, phone), "name": name})["data"]["loginWithCode"]
    assert payload["errors"] == [{"field": "displayName", "code": "DISPLAY_NAME_RESERVED",
                                  "message": "That name is reserved for the bank's verified accounts."}]
    assert payload["tokens"] is None


def test_ordinary_names_pass():
    new_manager("Mia Wang")
    assert names.impersonation_problem("王小明") is None
    assert names.impersonation_problem("Mia") is None
    assert names.impersonation_problem("Mia Wang", user_id=None) == "mimics_verified"
