"""Sign-up and login by SMS code and by password, with attempt and rate limits."""

import datetime as dt

import pytest

from backend.accounts.models import OtpChallenge, User
from backend.core import clock
from tests.conftest import LOGIN, REQUEST_CODE, last_code

pytestmark = pytest.mark.django_db

PHONE = "+8613900000001"


def test_first_login_with_code_signs_up_and_returns_tokens(gql, sms_outbox):
    assert gql(REQUEST_CODE, {"phone": "139 0000 0001"})["data"]["requestLoginCode"]["errors"] == []
    assert sms_outbox[-1][0] == PHONE  # normalised to E.164
    code = last_code(sms_outbox, PHONE)
    payload = gql(LOGIN, {"phone": PHONE, "code": code, "device": {"platform": "IOS", "name": "iPhone"}})
    result = payload["data"]["loginWithCode"]
    assert result["errors"] == []
    assert result["created"] is True
    assert result["viewer"]["phone"] == PHONE
    assert result["tokens"]["accessToken"] and result["tokens"]["refreshToken"]
    user = User.objects.get_by_phone(PHONE)
    assert user.kyc_level == User.KycLevel.BASIC
    assert user.devices.get().platform == "ios"


def test_second_login_finds_the_same_user(gql, sign_in):
    first = sign_in(PHONE)
    again = sign_in(PHONE)
    assert again["created"] is False
    assert again["viewer"]["id"] == first["viewer"]["id"]
    assert User.objects.count() == 1


def test_a_code_works_only_once(gql, sms_outbox):
    gql(REQUEST_CODE, {"phone": PHONE})
    code = last_code(sms_outbox, PHONE)
    assert gql(LOGIN, {"phone": PHONE, "code": code})["data"]["loginWithCode"]["errors"] == []
    replay = gql(LOGIN, {"phone": PHONE, "code": code})["data"]["loginWithCode"]
    assert replay["errors"][0]["code"] == "OTP_INVALID"
    assert replay["tokens"] is None


def test_wrong_codes_hit_the_attempt_limit_and_burn_the_code(gql, sms_outbox, settings):
    gql(REQUEST_CODE, {"phone": PHONE})
    good = last_code(sms_outbox, PHONE)
    wrong = "000000" if good != "000000" else "111111"
    codes = [gql(LOGIN, {"phone": PHONE, "code": wrong})["data"]["loginWithCode"]["errors"][0]["code"]
             for _ in range(settings.QUANZI["OTP_MAX_ATTEMPTS"])]
    assert codes[:-1] == ["OTP_INVALID"] * (len(codes) - 1)
    assert codes[-1] == "OTP_ATTEMPTS_EXCEEDED"
    # Even the right code no longer works, and no account was created.
    after = gql(LOGIN, {"phone": PHONE, "code": good})["data"]["loginWithCode"]
    assert after["errors"][0]["code"] == "OTP_ATTEMPTS_EXCEEDED"
    assert not User.objects.exists()


def test_expired_code_is_rejected(gql, sms_outbox):
    gql(REQUEST_CODE, {"phone": PHONE})
    code = last_code(sms_outbox, PHONE)
    clock.advance(dt.timedelta(minutes=6))
    assert gql(LOGIN, {"phone": PHONE, "code": code})["data"]["loginWithCode"]["errors"][0]["code"] == "OTP_INVALID"
    assert not User.objects.exists()


def test_a_new_code_replaces_the_old_one(gql, sms_outbox):
    gql(REQUEST_CODE, {"phone": PHONE})
    old = last_code(sms_outbox, PHONE)
    gql(REQUEST_CODE, {"phone": PHONE})
    new = last_code(sms_outbox, PHONE)
    if old != new:
        assert gql(LOGIN, {"phone": PHONE, "code": old})["data"]["loginWithCode"]["errors"][0]["code"] == "OTP_INVALID"
    assert gql(LOGIN, {"phone": PHONE, "code": new})["data"]["loginWithCode"]["errors"] == []


@pytest.mark.parametrize("phone", ["12345", "not a phone", "+86123", ""])
def test_bad_phone_numbers_are_rejected_without_sending(gql, sms_outbox, phone):
    result = gql(REQUEST_CODE, {"phone": phone})["data"]["requestLoginCode"]
    assert result["errors"][0] == {"field": "phone", "code": "INVALID_PHONE", "message": result["errors"][0]["message"]}
    assert sms_outbox == []
    assert not OtpChallenge.objects.exists()


@pytest.mark.parametrize("code", ["12345", "abcdef", "1234567", ""])
def test_malformed_codes_are_rejected(gql, sms_outbox, code):
    gql(REQUEST_CODE, {"phone": PHONE})
    assert gql(LOGIN, {"phone": PHONE, "code": code})["data"]["loginWithCode"]["errors"][0]["code"] == "OTP_INVALID"


def test_code_requests_are_rate_limited_per_phone(gql, sms_outbox, settings):
    limit = settings.QUANZI["OTP_PER_PHONE_PER_HOUR"]
    for _ in range(limit):
        assert gql(REQUEST_CODE, {"phone": PHONE})["data"]["requestLoginCode"]["errors"] == []
    blocked = gql(REQUEST_CODE, {"phone": PHONE})["data"]["requestLoginCode"]
    assert blocked["errors"][0]["code"] == "RATE_LIMITED"
    assert len(sms_outbox) == limit
    # Another number is not affected.
    assert gql(REQUEST_CODE, {"phone": "+8613900000002"})["data"]["requestLoginCode"]["errors"] == []


def test_code_requests_are_rate_limited_per_ip(gql, sms_outbox, settings):
    settings.QUANZI = {**settings.QUANZI, "OTP_PER_IP_PER_HOUR": 3}
    phones = [f"+861390000010{i}" for i in range(4)]
    results = [gql(REQUEST_CODE, {"phone": p}, REMOTE_ADDR="10.1.2.3")["data"]["requestLoginCode"] for p in phones]
    assert [r["errors"] for r in results[:3]] == [[], [], []]
    assert results[3]["errors"][0]["code"] == "RATE_LIMITED"
    # A different address still gets through.
    other = gql(REQUEST_CODE, {"phone": phones[3]}, REMOTE_ADDR="10.9.9.9")["data"]["requestLoginCode"]
    assert other["errors"] == []


PASSWORD_LOGIN = """
mutation($phone: String!, $password: String!) {
  loginWithPassword(phone: $phone, password: $password) { tokens { accessToken } errors { field code } }
}
"""
SET_PASSWORD = """mutation($p: String!, $code: String) {
  setPassword(password: $p, code: $code) { viewer { hasPassword } errors { code field } }
}"""


def test_password_login_after_setting_a_password(gql, sign_in, sms_outbox):
    token = sign_in(PHONE)["tokens"]["accessToken"]
    weak = gql(SET_PASSWORD, {"p": "123"}, token=token)["data"]["setPassword"]
    assert weak["errors"][0]["code"] == "WEAK_PASSWORD"
    gql(REQUEST_CODE, {"phone": PHONE})  # an account without a password proves itself with a fresh SMS code
    ok = gql(SET_PASSWORD, {"p": "correct horse battery", "code": last_code(sms_outbox, PHONE)},
             token=token)["data"]["setPassword"]
    assert ok == {"viewer": {"hasPassword": True}, "errors": []}
    good = gql(PASSWORD_LOGIN, {"phone": PHONE, "password": "correct horse battery"})["data"]["loginWithPassword"]
    assert good["errors"] == [] and good["tokens"]["accessToken"]
    bad = gql(PASSWORD_LOGIN, {"phone": PHONE, "password": "wrong password"})["data"]["loginWithPassword"]
    assert bad == {"tokens": None, "errors": [{"field": "password", "code": "INVALID_CREDENTIALS"}]}
    unknown = gql(PASSWORD_LOGIN, {"phone": "+8613900000077", "password": "whatever1"})["data"]["loginWithPassword"]
    assert unknown["errors"][0]["code"] == "INVALID_CREDENTIALS"  # same answer: no account enumeration


def test_password_logins_are_rate_limited(gql, sign_in, settings):
    sign_in(PHONE)
    limit = settings.QUANZI["LOGIN_PER_PHONE_PER_HOUR"]
    codes = [gql(PASSWORD_LOGIN, {"phone": PHONE, "password": "guess-number-x"})["data"]["loginWithPassword"]["errors"][0]["code"]
             for _ in range(limit)]
    assert "RATE_LIMITED" in codes  # the sign-in above used one attempt of the hour


def test_logins_are_rate_limited_per_ip(gql, settings):
    settings.QUANZI = {**settings.QUANZI, "LOGIN_PER_IP_PER_HOUR": 3}
    attempts = [
        gql(PASSWORD_LOGIN, {"phone": f"+861390000020{i}", "password": "guess-number-x"}, REMOTE_ADDR="10.7.7.7")
        ["data"]["loginWithPassword"]["errors"][0]["code"]
        for i in range(4)
    ]
    assert attempts == ["INVALID_CREDENTIALS"] * 3 + ["RATE_LIMITED"]
    other = gql(PASSWORD_LOGIN, {"phone": "+8613900000209", "password": "guess-number-x"}, REMOTE_ADDR="10.8.8.8")
    assert other["data"]["loginWithPassword"]["errors"][0]["code"] == "INVALID_CREDENTIALS"
