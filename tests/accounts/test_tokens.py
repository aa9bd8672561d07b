"""Access tokens, refresh rotation, reuse detection, logout."""

import datetime as dt

import jwt
import pytest

from backend.accounts.models import Device
from backend.core import clock

pytestmark = pytest.mark.django_db

ME = "{ me { displayName phone devices { name isCurrent } } }"
REFRESH = """
mutation($t: String!) { refreshTokens(refreshToken: $t) { tokens { accessToken refreshToken } errors { code field } } }
"""


def error_code(response: dict) -> str:
    return response["errors"][0]["extensions"]["code"]


def test_me_works_with_a_token_and_fails_clearly_without(gql, sign_in):
    token = sign_in("+8613900000001", {"platform": "ANDROID", "name": "Mate 60"})["tokens"]["accessToken"]
    me = gql(ME, token=token)["data"]["me"]
    assert me["phone"] == "+8613900000001"
    assert me["devices"] == [{"name": "Mate 60", "isCurrent": True}]
    anonymous = gql(ME)
    assert anonymous["data"] is None
    assert error_code(anonymous) == "UNAUTHENTICATED"


def test_expired_access_token_says_so(gql, sign_in, settings):
    token = sign_in()["tokens"]["accessToken"]
    clock.advance(dt.timedelta(seconds=settings.QUANZI["ACCESS_TOKEN_SECONDS"] + 1))
    assert error_code(gql(ME, token=token)) == "TOKEN_EXPIRED"


@pytest.mark.parametrize("mangle", ["forged_key", "garbage", "wrong_type", "unknown_device"])
def test_forged_and_garbage_tokens_are_rejected(gql, sign_in, settings, mangle):
    token = sign_in()["tokens"]["accessToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    if mangle == "forged_key":
        token = jwt.encode(claims, "not-the-server-key-but-long-enough-to-sign", algorithm="HS256")
    elif mangle == "garbage":
        token = "definitely.not.ajwt"
    elif mangle == "wrong_type":
        token = jwt.encode({**claims, "typ": "refresh"}, settings.JWT_SIGNING_KEY, algorithm="HS256")
    else:
        token = jwt.encode({**claims, "did": 99999}, settings.JWT_SIGNING_KEY, algorithm="HS256")
    assert error_code(gql(ME, token=token)) == "TOKEN_INVALID"


def test_refresh_rotates_and_reuse_revokes_the_device(gql, sign_in):
    session = sign_in()
    first_refresh = session["tokens"]["refreshToken"]
    rotated = gql(REFRESH, {"t": first_refresh})["data"]["refreshTokens"]
    assert rotated["errors"] == []
    new_access, new_refresh = rotated["tokens"]["accessToken"], rotated["tokens"]["refreshToken"]
    assert new_refresh != first_refresh
    assert gql(ME, token=new_access)["data"]["me"]

    # Someone replays the spent token: the whole device chain dies, including the fresh tokens.
    replay = gql(REFRESH, {"t": first_refresh})["data"]["refreshTokens"]
    assert replay == {"tokens": None, "errors": [{"code": "REFRESH_TOKEN_REUSED", "field": "refreshToken"}]}
    assert Device.objects.get().revoked_reason == "refresh_reuse"
    assert error_code(gql(ME, token=new_access)) == "TOKEN_INVALID"
    assert gql(REFRESH, {"t": new_refresh})["data"]["refreshTokens"]["errors"][0]["code"] == "TOKEN_INVALID"


def test_refresh_with_unknown_or_expired_token(gql, sign_in, settings):
    assert gql(REFRESH, {"t": "nope"})["data"]["refreshTokens"]["errors"][0]["code"] == "TOKEN_INVALID"
    refresh = sign_in()["tokens"]["refreshToken"]
    clock.advance(dt.timedelta(days=settings.QUANZI["REFRESH_TOKEN_DAYS"] + 1))
    assert gql(REFRESH, {"t": refresh})["data"]["refreshTokens"]["errors"][0]["code"] == "TOKEN_INVALID"


def test_logout_kills_this_device_only(gql, sign_in):
    phone_a = sign_in("+8613900000001", {"platform": "ANDROID", "name": "phone"})["tokens"]
    tablet = sign_in("+8613900000001", {"platform": "IOS", "name": "tablet"})["tokens"]
    out = gql("mutation { logout { ok errors { code } } }", token=phone_a["accessToken"])["data"]["logout"]
    assert out == {"ok": True, "errors": []}
    assert error_code(gql(ME, token=phone_a["accessToken"])) == "TOKEN_INVALID"
    assert gql(REFRESH, {"t": phone_a["refreshToken"]})["data"]["refreshTokens"]["errors"][0]["code"] == "TOKEN_INVALID"
    assert gql(ME, token=tablet["accessToken"])["data"]["me"]["devices"] == [{"name": "tablet", "isCurrent": True}]


def test_logout_all_devices(gql, sign_in):
    a = sign_in("+8613900000001")["tokens"]["accessToken"]
    b = sign_in("+8613900000001")["tokens"]["accessToken"]
    result = gql("mutation { logoutAllDevices { revokedDevices errors { code } } }", token=a)["data"]
    assert result["logoutAllDevices"] == {"revokedDevices": 2, "errors": []}
    assert error_code(gql(ME, token=b)) == "TOKEN_INVALID"


def test_a_user_cannot_revoke_someone_elses_device(gql, sign_in):
    alice = sign_in("+8613900000001")["tokens"]["accessToken"]
    sign_in("+8613900000002")
    bobs_device = Device.objects.get(user__display_name__endswith="0002")
    from backend.core.ids import encode_id

    result = gql("mutation($id: ID!) { revokeDevice(deviceId: $id) { ok errors { code } } }",
                 {"id": encode_id("Device", bobs_device.pk)}, token=alice)["data"]["revokeDevice"]
    assert result == {"ok": None, "errors": [{"code": "NOT_FOUND"}]}
    bobs_device.refresh_from_db()
    assert bobs_device.revoked_at is None


def test_push_target_update_moves_a_token_between_accounts(gql, sign_in):
    a = sign_in("+8613900000001")["tokens"]["accessToken"]
    b = sign_in("+8613900000002")["tokens"]["accessToken"]
    q = "mutation($t: String) { updatePushTarget(fcmToken: $t) { device { pushEnabled } errors { code } } }"
    assert gql(q, {"t": "fcm-token-1"}, token=a)["data"]["updatePushTarget"]["errors"] == []
    assert gql(q, {"t": "fcm-token-1"}, token=b)["data"]["updatePushTarget"]["errors"] == []
    # The phone changed hands: only the latest account receives pushes for that token.
    assert list(Device.objects.filter(fcm_token="fcm-token-1").values_list("user__phone_index", flat=True)).__len__() == 1
