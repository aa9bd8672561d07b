"""GraphQL for accounts: who am I, sign-up/login by code or password, tokens, devices. Thin: services decide."""

from __future__ import annotations

import graphene

from backend.core import nodes
from backend.core.graphql import BaseMutation, client_ip, register_app_errors, require_device, require_user
from backend.core.ids import fetch_scoped

from . import ids, selectors, services
from .models import Device as DeviceModel
from .models import User as UserModel

AccountError = register_app_errors("Account", "backend.accounts")  # payload errors; code: AccountErrorCode

# Built from the model's choices, so a value read from the database (1) and one just assigned in Python
# (User.KycLevel.BASIC, as on sign-up) both render; a hand-written copy crashed on the latter.
KycLevel = graphene.Enum.from_enum(UserModel.KycLevel, description="How far the user's identity is verified.")


class Platform(graphene.Enum):
    ANDROID = "android"
    IOS = "ios"
    WEB = "web"


def _is_self(user: UserModel, info) -> bool:
    """Private fields render only for the user themself: the caller, or the user a login payload signed in."""
    if getattr(user, "_rendered_for_self", False):
        return True
    caller = getattr(info.context, "user", None)
    return caller is not None and caller.is_authenticated and caller.pk == user.pk


def _private(resolve):
    def resolver(root: UserModel, info):
        return resolve(root, info) if _is_self(root, info) else None
    return staticmethod(resolver)


class User(graphene.ObjectType):
    """A user. Everyone sees the public fields; the private ones (phone, KYC, devices, …) are null unless the
    user is the caller (`me`, or the `viewer` of a login payload). A user has one id everywhere: GraphQL,
    socket frames and push data; it is opaque (not sequential, not the database key)."""

    class Meta:
        interfaces = (graphene.relay.Node,)
        name = "User"

    display_name = graphene.String(required=True)
    avatar_url = graphene.String(required=True)
    is_client_manager = graphene.Boolean(required=True)
    is_verified = graphene.Boolean(
        required=True, description="The bank's verified badge: staff, client managers and service accounts. No "
        "customer can obtain it, and customers cannot take names that mimic them.")
    phone = graphene.String(description="Mine only (null for other users): my phone number.")
    kyc_level = graphene.Field(KycLevel, description="Mine only (null for other users).")
    has_password = graphene.Boolean(description="Mine only (null for other users).")
    date_joined = graphene.DateTime(description="Mine only (null for other users).")
    devices = graphene.List(graphene.NonNull(lambda: Device),
                            description="Mine only (null for other users): my signed-in devices.")

    @staticmethod
    def resolve_id(root: UserModel, info):
        return ids.public_token(root.pk)

    resolve_phone = _private(lambda root, info: root.phone)
    resolve_kyc_level = _private(lambda root, info: root.kyc_level)
    resolve_has_password = _private(lambda root, info: root.has_usable_password())
    resolve_date_joined = _private(lambda root, info: root.date_joined)
    resolve_devices = _private(lambda root, info: selectors.active_devices_of(root))

    @classmethod
    def from_user(cls, user: UserModel) -> UserModel:
        """The user as they see themselves (private fields included) in a payload of their own session."""
        user._rendered_for_self = True
        return user


Viewer = User  # the signed-in user is a User whose private fields are visible


class Device(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    name = graphene.String(required=True)
    platform = graphene.Field(Platform, required=True)
    push_enabled = graphene.Boolean(required=True)
    created_at = graphene.DateTime(required=True)
    last_seen_at = graphene.DateTime(required=True)
    is_current = graphene.Boolean(required=True)

    @staticmethod
    def resolve_platform(root: DeviceModel, info):
        return root.platform

    @staticmethod
    def resolve_is_current(root: DeviceModel, info):
        current = getattr(info.context, "device", None)
        return current is not None and current.pk == root.pk


nodes.register(User, model=UserModel, scoped=lambda user: selectors.visible_users())
nodes.register(Device, model=DeviceModel, scoped=selectors.active_devices_of)


class AuthTokens(graphene.ObjectType):
    access_token = graphene.String(required=True)
    access_token_expires_at = graphene.DateTime(required=True)
    refresh_token = graphene.String(required=True)
    refresh_token_expires_at = graphene.DateTime(required=True)


def _tokens(session: services.Session) -> dict:
    return {
        "tokens": AuthTokens(
            access_token=session.access_token, access_token_expires_at=session.access_expires_at,
            refresh_token=session.refresh_token, refresh_token_expires_at=session.refresh_expires_at,
        ),
        "viewer": User.from_user(session.user),
    }


class DeviceInput(graphene.InputObjectType):
    name = graphene.String()
    platform = graphene.Field(Platform, required=True)
    fcm_token = graphene.String(description="FCM registration token.")
    installation_id = graphene.String(description="Firebase installation id (preferred from firebase-admin 7.7).")


def _device_info(device: DeviceInput | None) -> services.DeviceInfo:
    if device is None:
        return services.DeviceInfo()
    platform = device.platform.value if hasattr(device.platform, "value") else device.platform
    return services.DeviceInfo(
        name=device.name or "", platform=platform or "android",
        fcm_token=device.fcm_token or "", installation_id=device.installation_id or "",
    )


class RequestLoginCode(BaseMutation):
    """Send a one-time login code by SMS (also signs up a new number)."""

    class Arguments:
        phone = graphene.String(required=True)

    code_expires_at = graphene.DateTime()

    @classmethod
    def perform(cls, root, info, phone):
        challenge = services.request_login_code(phone=phone, ip=client_ip(info.context))
        return {"code_expires_at": challenge.expires_at}


class SessionPayloadMixin:
    tokens = graphene.Field(AuthTokens)
    viewer = graphene.Field(User)


class LoginWithCode(SessionPayloadMixin, BaseMutation):
    """Sign in, or sign up on first use, with the SMS code."""

    class Arguments:
        phone = graphene.String(required=True)
        code = graphene.String(required=True)
        device = DeviceInput()
        display_name = graphene.String(description="Used only when this login creates the account.")

    created = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, phone, code, device=None, display_name=""):
        session = services.login_with_code(
            phone=phone, code=code, device=_device_info(device), display_name=display_name or "",
            ip=client_ip(info.context),
        )
        return {**_tokens(session), "created": session.created_user}


class LoginWithPassword(SessionPayloadMixin, BaseMutation):
    class Arguments:
        phone = graphene.String(required=True)
        password = graphene.String(required=True)
        device = DeviceInput()

    @classmethod
    def perform(cls, root, info, phone, password, device=None):
        session = services.login_with_password(
            phone=phone, password=password, device=_device_info(device), ip=client_ip(info.context)
        )
        return _tokens(session)


class RefreshTokens(SessionPayloadMixin, BaseMutation):
    """Exchange a refresh token for a new pair. Each refresh token works once."""

    class Arguments:
        refresh_token = graphene.String(required=True)

    @classmethod
    def perform(cls, root, info, refresh_token):
        return _tokens(services.refresh_session(refresh_token=refresh_token))


class SetPassword(BaseMutation):
    """Change the password (or set a first one). Proof of ownership: the current password, or, for an account
    without one, a fresh SMS code from requestLoginCode. Every other device is signed out."""

    class Arguments:
        password = graphene.String(required=True)
        current_password = graphene.String(description="Required when the account already has a password.")
        code = graphene.String(description="SMS code from requestLoginCode; required when it has none.")

    viewer = graphene.Field(User)
    signed_out_devices = graphene.Int(description="How many other devices were signed out.")

    @classmethod
    def perform(cls, root, info, password, current_password=None, code=None):
        user = require_user(info)
        signed_out = services.set_password(
            user=user, device=require_device(info), password=password, current_password=current_password,
            code=code, ip=client_ip(info.context),
        )
        return {"viewer": User.from_user(user), "signed_out_devices": signed_out}


class Logout(BaseMutation):
    """Sign this device out: its refresh and access tokens stop working at once."""

    ok = graphene.Boolean()

    @classmethod
    def perform(cls, root, info):
        services.logout(device=require_device(info))
        return {"ok": True}


class LogoutAllDevices(BaseMutation):
    revoked_devices = graphene.Int()

    @classmethod
    def perform(cls, root, info):
        return {"revoked_devices": services.logout_all_devices(user=require_user(info))}


class RevokeDevice(BaseMutation):
    """Sign out one of my other devices (e.g. a lost phone)."""

    class Arguments:
        device_id = graphene.ID(required=True)

    ok = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, device_id):
        user = require_user(info)
        device = fetch_scoped(device_id, type_name="Device", scoped=selectors.active_devices_of(user), field="deviceId")
        services.logout(device=device)
        return {"ok": True}


class UpdatePushTarget(BaseMutation):
    """The phone reports a new FCM token or installation id for this device."""

    class Arguments:
        fcm_token = graphene.String()
        installation_id = graphene.String()

    device = graphene.Field(Device)

    @classmethod
    def perform(cls, root, info, fcm_token="", installation_id=""):
        device = services.update_device_push_target(
            device=require_device(info), fcm_token=fcm_token or "", installation_id=installation_id or ""
        )
        return {"device": device}


class Query(graphene.ObjectType):
    me = graphene.Field(User, required=True, description="The signed-in user. Requires a bearer token.")

    @staticmethod
    def resolve_me(root, info):
        return require_user(info)


class Mutation(graphene.ObjectType):
    request_login_code = RequestLoginCode.Field()
    login_with_code = LoginWithCode.Field()
    login_with_password = LoginWithPassword.Field()
    refresh_tokens = RefreshTokens.Field()
    set_password = SetPassword.Field()
    logout = Logout.Field()
    logout_all_devices = LogoutAllDevices.Field()
    revoke_device = RevokeDevice.Field()
    update_push_target = UpdatePushTarget.Field()
