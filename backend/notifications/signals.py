"""Signals other apps listen to without importing the app that wrote the notice."""

from django.dispatch import Signal

# Sent by notify() for every notification recorded, inside the writer's transaction:
# `notification` (the new row). Receivers that do more than read must defer their work to after commit.
notification_recorded = Signal()
