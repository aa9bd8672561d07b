""""A message was posted" listeners: apps above chat react to new messages without chat importing them.

Chat must not import advisors, yet an advisor conversation needs an automatic reply when a customer writes
outside their manager's office hours. So advisors registers a listener here from its AppConfig.ready() (the
same style as core.reach), and chat calls `message_posted` for every new message a person sends.

Listeners run inside the sending transaction, after the message is appended and while the conversation row
is locked: they must be quick, and whatever they write commits (or rolls back) with the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PostedMessage:
    conversation_id: int
    conversation_kind: str
    message_id: int
    seq: int
    sender_id: int
    kind: str


MessageListener = Callable[[PostedMessage], None]

_listeners: list[MessageListener] = []


def register_message_listener(listener: MessageListener) -> None:
    """Call `listener(PostedMessage)` for every new message a user posts. Registering twice is a no-op."""
    if listener not in _listeners:
        _listeners.append(listener)


def message_posted(posted: PostedMessage) -> None:
    """Chat calls this once per new message (not for resends, system messages or cards)."""
    for listener in _listeners:
        listener(posted)
