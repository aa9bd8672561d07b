"""Every advisors node type refetches through node(id:) for who may see it, and is null for anyone else."""

from __future__ import annotations

import pytest

from backend.advisors import services
from backend.core.ids import encode_id
from tests.chat.conftest import token_for

from .conftest import assign, new_manager, new_user

pytestmark = pytest.mark.django_db

NODE = "query($i: ID!) { node(id: $i) { __typename id } }"


def test_advisors_objects_refetch_for_their_owner_only(gql, product, django_capture_on_commit_callbacks):
    mia, max_, ann = new_manager("Mia"), new_manager("Max"), new_user("Ann")
    assign(ann, mia)
    account = services.create_service_account(slug="offers", name="Offers", category="marketing")
    reply = services.create_quick_reply(manager=mia, title="hours", text="We open at 9.")
    note = services.add_note(manager=mia, customer_id=ann.pk, body="prefers calls")
    with django_capture_on_commit_callbacks(execute=True):
        broadcast = services.create_broadcast(sender=mia, account=account, text="新品", target="list",
                                              user_ids=[ann.pk])
    ids = {"Product": encode_id("Product", product.pk), "ServiceAccount": encode_id("ServiceAccount", account.pk),
           "QuickReply": encode_id("QuickReply", reply.pk), "CustomerNote": encode_id("CustomerNote", note.pk),
           "Broadcast": encode_id("Broadcast", broadcast.pk)}

    def seen_by(user) -> set[str]:
        token = token_for(user)
        return {name for name, gid in ids.items()
                if gql(NODE, {"i": gid}, token=token)["data"]["node"] == {"__typename": name, "id": gid}}

    assert seen_by(mia) == set(ids)
    public = {"Product", "ServiceAccount"}  # the catalog and the named senders are for everyone
    assert seen_by(max_) == public
    assert seen_by(ann) == public
