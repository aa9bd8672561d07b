"""Sessions that stay dead, setPassword that proves ownership, security notices, atomic OTP attempts."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from backend.accounts import services
from backend.accounts.models import Device, OtpChallenge, User
from backend.notifications.models import Notification
from tests.conftest import REQUEST_CODE, last_code

PHONE = "+8613900000001"
ME = "{ me { displayName } }"
SET_PASSWORD = """mutation($p: String!, $current: String, $code: String) {
  setPassword(password: $p, currentPassword: $current, code: $code) {
    viewer { hasPassword } signedOutDevices errors { code field }
  }
}"""
PASSWORD_LOGIN = """mutation($phone: String!, $password: String!, $device: DeviceInput) {
  loginWithPassword(phone: $phone, password: $password, device: $device) { tokens { accessToken } errors { code } }
}"""


def error_code(response: dict) -> str:
    return response["errors"][0]["extensions"]["code"]


def notices(event: str) -> list[Notification]:
    return list(Notification.objects.filter(event=event, kind="system"))


@pytest.mark.django_db
def test_signing_in_again_on_the_same_installation_does_not_revive_old_tokens(gql, sign_in):
    device = {"platform": "ANDROID", "installationId": "fid-install-1"}
    token_a = sign_in(PHONE, device)["tokens"]["accessToken"]
    assert gql("mutation { logout { ok } }", token=token_a)["data"]["logout"]["ok"]
    token_b = sign_in(PHONE, device)["tokens"]["accessToken"]
    assert Device.objects.count() == 1  # the same row was signed in again
    assert error_code(gql(ME, token=token_a)) == "TOKEN_INVALID"
    assert gql(ME, token=token_b)["data"]["me"]["displayName"]


@pytest.mark.django_db
def test_a_second_sign_in_on_the_installation_voids_the_first_sessions_tokens(gql, sign_in):
    device = {"platform": "IOS", "installationId": "fid-install-2"}
    token_a = sign_in(PHONE, device)["tokens"]["accessToken"]
    sign_in(PHONE, device)
    assert error_code(gql(ME, token=token_a)) == "TOKEN_INVALID"


@pytest.mark.django_db
def test_set_password_needs_a_fresh_code_when_there_is_none(gql, sign_in, sms_outbox):
    token = sign_in(PHONE)["tokens"]["accessToken"]
    bare = gql(SET_PASSWORD, {"p": "correct horse battery"}, token=token)["data"]["setPassword"]
    assert bare["errors"] == [{"code": "OTP_INVALID", "field": "code"}]
    assert not User.objects.get().has_usable_password()
    gql(REQUEST_CODE, {"phone": PHONE})
    ok = gql(SET_PASSWORD, {"p": "correct horse battery", "code": last_code(sms_outbox, PHONE)},
             token=token)["data"]["setPassword"]
    assert ok["errors"] == [] and ok["viewer"] == {"hasPassword": True}


@pytest.mark.django_db
def test_changing_a_password_needs_the_current_one_and_signs_out_the_other_devices(gql, sign_in, sms_outbox):
    phone_token = sign_in(PHONE, {"platform": "ANDROID", "name": "phone"})["tokens"]["accessToken"]
    tablet_token = sign_in(PHONE, {"platform": "IOS", "name": "tablet"})["tokens"]["accessToken"]
    gql(REQUEST_CODE, {"phone": PHONE})
    first = gql(SET_PASSWORD, {"p": "first password 1", "code": last_code(sms_outbox, PHONE)}, token=phone_token)
    assert first["data"]["setPassword"]["signedOutDevices"] == 1
    assert error_code(gql(ME, token=tablet_token)) == "TOKEN_INVALID"
    tablet_token = gql(PASSWORD_LOGIN, {"phone": PHONE, "password": "first password 1",
                                        "device": {"platform": "IOS", "name": "tablet"}}
                       )["data"]["loginWithPassword"]["tokens"]["accessToken"]

    # A stolen bearer token alone cannot change the password.
    for current in (None, "guessed password"):
        wrong = gql(SET_PASSWORD, {"p": "attacker password 9", "current": current}, token=tablet_token)
        assert wrong["data"]["setPassword"]["errors"] == [{"code": "INVALID_CURRENT_PASSWORD",
                                                           "field": "currentPassword"}]
    assert User.objects.get().check_password("first password 1")
    assert gql(ME, token=phone_token)["data"]["me"]  # nothing was signed out

    ok = gql(SET_PASSWORD, {"p": "second password 2", "current": "first password 1"}, token=tablet_token)
    assert ok["data"]["setPassword"]["errors"] == [] and ok["data"]["setPassword"]["signedOutDevices"] == 1
    assert error_code(gql(ME, token=phone_token)) == "TOKEN_INVALID"
    assert gql(ME, token=tablet_token)["data"]["me"]  # the device that changed it stays signed in
    changed = notices("accounts.password_changed")
    assert len(changed) == 2 and changed[0].recipient.phone == PHONE
    assert "Password changed" in changed[0].title


@pytest.mark.django_db
def test_security_notices_for_new_devices_and_sign_out_everywhere(gql, sign_in):
    first = {"platform": "ANDROID", "installationId": "fid-a", "name": "Mate 60"}
    token = sign_in(PHONE, first)["tokens"]["accessToken"]
    assert notices("accounts.new_device_sign_in") == []  # signing up is not a "new device" alarm
    sign_in(PHONE, first)
    assert notices("accounts.new_device_sign_in") == []  # the same installation again
    token = sign_in(PHONE, {"platform": "IOS", "installationId": "fid-b", "name": "iPad"})["tokens"]["accessToken"]
    [new_device] = notices("accounts.new_device_sign_in")
    assert "iPad" in new_device.body
    gql("mutation { logoutAllDevices { revokedDevices } }", token=token)
    [everywhere] = notices("accounts.signed_out_everywhere")
    assert everywhere.payload == {"devices_signed_out": 2}


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_get_no_more_than_the_allowed_attempts(require_postgres, settings, sms_outbox):
    """Fifty guesses at once: only OTP_MAX_ATTEMPTS of them are ever compared with the code."""
    settings.QUANZI = {**settings.QUANZI, "LOGIN_PER_PHONE_PER_HOUR": 1000, "LOGIN_PER_IP_PER_HOUR": 1000}
    services.request_login_code(phone=PHONE)
    good = last_code(sms_outbox, PHONE)
    wrong = [f"{(int(good) + n) % 1_000_000:06d}" for n in range(1, 51)]
    start = threading.Barrier(len(wrong))
    outcomes: list[str] = []
    lock = threading.Lock()

    def guess(code: str) -> None:
        try:
            start.wait()
            services.login_with_code(phone=PHONE, code=code, device=services.DeviceInfo())
            outcome = "SIGNED_IN"
        except services.DomainError as exc:
            outcome = exc.code
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=guess, args=(code,)) for code in wrong]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    allowed = settings.QUANZI["OTP_MAX_ATTEMPTS"]
    assert len(outcomes) == 50 and "SIGNED_IN" not in outcomes
    assert outcomes.count("OTP_INVALID") <= allowed - 1  # the last allowed wrong guess answers EXCEEDED
    assert OtpChallenge.objects.get().attempts == allowed
    with pytest.raises(services.OtpAttemptsExceeded):
        services.login_with_code(phone=PHONE, code=good, device=services.DeviceInfo())
