"""Moments (朋友圈): posts to friends or to one circle, likes and comments under WeChat's visibility rule."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F

from backend.core import clock
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.values import is_int

from .. import selectors
from ..models import AbuseReport, Post, PostComment, PostLike
from ._base import clean_https_url, clean_line, clean_text, limit, lock_circle, member_seat

CARD_KINDS = ("product", "loan_request")


def _clean_card(card: object) -> dict | None:
    if card is None:
        return None
    if not isinstance(card, dict) or card.get("kind") not in CARD_KINDS:
        raise ValidationFailed(f"A card is {{kind: {' | '.join(CARD_KINDS)}, ...}}.", code="INVALID_CARD", field="card")
    try:
        size = len(json.dumps(card, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("A card must be JSON.", code="INVALID_CARD", field="card") from exc
    if size > 2048:
        raise ValidationFailed("The card is too large.", code="INVALID_CARD", field="card")
    return card


def create_post(*, author: Any, text: str = "", images: list | None = None, circle_id: int | None = None,
                card: dict | None = None) -> Post:
    """Post to my friends, or to one circle I am an active (and not muted) member of."""
    text = clean_text(text, field="text", code="INVALID_TEXT", max_chars=limit("POST_MAX_CHARS"))
    images = list(images or [])
    if len(images) > limit("POST_MAX_IMAGES"):
        raise ValidationFailed(f"At most {limit('POST_MAX_IMAGES')} images.", code="INVALID_IMAGES", field="images")
    images = [clean_https_url(url, field="images", code="INVALID_IMAGES", required=True) for url in images]
    card = _clean_card(card)
    if not text.strip() and not images and card is None:
        raise ValidationFailed("A post needs text, an image or a card.", code="EMPTY_POST", field="text")
    with transaction.atomic():
        circle = None
        if circle_id is not None:
            circle = lock_circle(circle_id)
            seat = member_seat(circle, author.pk)
            if seat.muted_until is not None and seat.muted_until > clock.now():
                raise Conflict("An admin muted you in this circle.", code="MUTED", field="circleId")
        return Post.objects.create(author=author, text=text, images=images, card=card, circle=circle,
                                   audience=Post.Audience.CIRCLE if circle else Post.Audience.FRIENDS)


def _visible_post(user: Any, post_id: object, *, lock: bool = False) -> Post:
    """A post the user may see (NOT_FOUND otherwise, as for a missing post)."""
    if not is_int(post_id) or not selectors.visible_posts(user.pk).filter(pk=post_id).exists():
        raise NotFound(field="postId")
    rows = Post.objects.filter(pk=post_id)
    return (rows.select_for_update() if lock else rows).get()


def delete_post(*, user: Any, post_id: int) -> None:
    """The author deletes a post. In a circle, its admins may remove it too."""
    with transaction.atomic():
        post = _visible_post(user, post_id, lock=True)
        if post.author_id != user.pk:
            seat = selectors.seat_of(user.pk, post.circle_id) if post.circle_id else None
            if seat is None or seat.role not in ("owner", "admin"):
                raise NotFound(field="postId")
        post.deleted_at = clock.now()
        post.save(update_fields=["deleted_at"])


def like_post(*, user: Any, post_id: int) -> Post:
    with transaction.atomic():
        post = _visible_post(user, post_id, lock=True)
        try:
            with transaction.atomic():
                PostLike.objects.create(post=post, user=user)
        except IntegrityError:
            return post  # liking twice changes nothing
        Post.objects.filter(pk=post.pk).update(like_count=F("like_count") + 1)
        post.refresh_from_db(fields=["like_count"])
    return post


def unlike_post(*, user: Any, post_id: int) -> Post:
    with transaction.atomic():
        post = _visible_post(user, post_id, lock=True)
        deleted, _ = PostLike.objects.filter(post=post, user=user).delete()
        if deleted:
            Post.objects.filter(pk=post.pk).update(like_count=F("like_count") - 1)
            post.refresh_from_db(fields=["like_count"])
    return post


def comment_on_post(*, user: Any, post_id: int, text: str) -> PostComment:
    """Anyone who sees the post may comment; who sees the comment is decided when reading (selectors)."""
    text = clean_text(text, field="text", code="INVALID_TEXT", max_chars=limit("COMMENT_MAX_CHARS"), required=True)
    with transaction.atomic():
        post = _visible_post(user, post_id)
        return PostComment.objects.create(post=post, author=user, text=text)


def delete_comment(*, user: Any, comment_id: int) -> None:
    with transaction.atomic():
        changed = PostComment.objects.filter(pk=comment_id if is_int(comment_id) else 0, author=user,
                                             deleted_at__isnull=True).update(deleted_at=clock.now())
        if not changed:
            raise NotFound(field="commentId")


def report_abuse(*, reporter: Any, reason: str, user_id: int | None = None, circle_id: int | None = None,
                 post_id: int | None = None) -> AbuseReport:
    """Report a user, a circle or a post to operations. The target must be something the reporter can see."""
    reason = clean_line(reason, field="reason", code="INVALID_REASON", max_chars=500)
    if sum(x is not None for x in (user_id, circle_id, post_id)) != 1:
        raise ValidationFailed("Report one user, circle or post.", code="INVALID_TARGET", field="userId")
    if post_id is not None:
        _visible_post(reporter, post_id)
    if circle_id is not None and not selectors.visible_circles(reporter.pk).filter(pk=circle_id).exists():
        raise NotFound(field="circleId")
    if user_id is not None and not get_user_model().objects.filter(pk=user_id if is_int(user_id) else 0).exists():
        raise NotFound(field="userId")
    return AbuseReport.objects.create(reporter=reporter, reason=reason, target_user_id=user_id, circle_id=circle_id,
                                      post_id=post_id)


__all__ = ["create_post", "delete_post", "like_post", "unlike_post", "comment_on_post", "delete_comment",
           "report_abuse"]
