from django.contrib.auth.backends import ModelBackend

from backend.core.errors import ValidationFailed

from .models import User, phone_index


class PhonePasswordBackend(ModelBackend):
    """Admin and password login by phone number (looked up through its blind index)."""

    def authenticate(self, request, username=None, password=None, phone=None, **kwargs):
        raw = phone or username
        if not raw or not password:
            return None
        try:
            user = User.objects.get(phone_index=phone_index(raw))
        except (User.DoesNotExist, ValidationFailed):
            User().set_password(password)  # same work either way: no timing oracle for unknown phones
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
