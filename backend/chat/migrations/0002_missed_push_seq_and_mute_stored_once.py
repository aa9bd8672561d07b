"""Mutes are stored once (notifications.ConversationMute); seats get the missed-message push marker.

Every active seat's `muted` is carried over to a ConversationMute before the column goes (chat mirrored each
change there, so normally it is already present; a mute that only notifications knows — e.g. one with an end —
is left as it is). Existing seats start their missed-push marker at the conversation's newest seq, so the
first sweep after deploying does not push a day of old unread messages.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def carry_mutes_over(apps, schema_editor):
    Membership = apps.get_model("chat", "Membership")
    ConversationMute = apps.get_model("notifications", "ConversationMute")
    muted = Membership.objects.filter(muted=True, left_at__isnull=True).values_list("user_id", "conversation_id")
    for user_id, conversation_id in muted.iterator():
        ConversationMute.objects.get_or_create(user_id=user_id, conversation_id=conversation_id)


def carry_mutes_back(apps, schema_editor):
    Membership = apps.get_model("chat", "Membership")
    ConversationMute = apps.get_model("notifications", "ConversationMute")
    for user_id, conversation_id in ConversationMute.objects.values_list("user_id", "conversation_id").iterator():
        Membership.objects.filter(user_id=user_id, conversation_id=conversation_id).update(muted=True)


def start_missed_push_markers(apps, schema_editor):
    Membership = apps.get_model("chat", "Membership")
    Conversation = apps.get_model("chat", "Conversation")
    Membership.objects.update(
        missed_push_seq=Subquery(Conversation.objects.filter(pk=OuterRef("conversation_id")).values("last_seq")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0001_initial'),
        ('notifications', '0002_preferences_mutes_deliveries'),
    ]

    operations = [
        migrations.RunPython(carry_mutes_over, carry_mutes_back),
        migrations.RemoveField(
            model_name='membership',
            name='muted',
        ),
        migrations.AddField(
            model_name='membership',
            name='missed_push_seq',
            field=models.BigIntegerField(default=0, help_text='Messages up to this seq were settled by the missed-message push sweep.'),
        ),
        migrations.RunPython(start_missed_push_markers, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='conversation',
            index=models.Index(fields=['last_activity_at'], name='chat_conv_activity_idx'),
        ),
    ]
