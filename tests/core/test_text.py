"""Why text cannot be stored is said accurately: a lone surrogate is not a NUL."""

import pytest

from backend.core.errors import ValidationFailed, camel_case_field
from backend.core.text import storage_problem


def test_storage_problem_names_the_actual_fault():
    assert storage_problem("fine 好") is None
    assert "NUL" in storage_problem("a\x00b")
    problem = storage_problem("a\ud800b")
    assert "surrogate" in problem and "NUL" not in problem


@pytest.mark.django_db
def test_a_message_with_a_lone_surrogate_is_refused_with_an_accurate_message():
    from backend.chat import services

    from ..chat.conftest import new_user
    from ..conftest import open_direct_between_friends

    ada, bob = new_user("Ada"), new_user("Bob")
    direct = open_direct_between_friends(ada, bob)
    with pytest.raises(ValidationFailed) as raised:
        services.send_message(conversation_id=direct.pk, sender=ada, client_msg_id="s1", kind="text",
                              text="hi \ud83d", attachment=None, reply_to_seq=None, mention_ids=[])
    assert raised.value.code == "INVALID_TEXT" and "surrogate" in raised.value.message
    assert "NUL" not in raised.value.message


def test_error_fields_become_camel_case_segment_by_segment():
    assert camel_case_field("conversation_id") == "conversationId"
    assert camel_case_field("attachment.mime_type") == "attachment.mimeType"
    assert camel_case_field("conversations.Q29udmVyc2F0aW9uOjE=") == "conversations.Q29udmVyc2F0aW9uOjE="
    assert camel_case_field("clientMsgId") == "clientMsgId"
    assert camel_case_field(None) is None
