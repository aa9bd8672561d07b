"""A timeline page asked the way a phone asks it (20 posts with likes, authors and comments) fits the query cost
limit, because a post's comments are bounded by `first` (default 10) instead of counted as an unbounded list."""

from __future__ import annotations

from backend.circles import services
from tests.chat.conftest import token_for

from .conftest import befriend

TIMELINE = ("query { moments(first: 20) { edges { node { text likeCount likedByMe author { displayName } "
            "circle { name } comments%s { text author { displayName } } } } pageInfo { hasNextPage endCursor } } }")


def test_a_full_timeline_page_is_accepted_and_comments_are_bounded(gql, people):
    ada, bob = people[:2]
    befriend(ada, bob)
    post = services.create_post(author=ada, text="周末爬山")
    for n in range(3):
        services.comment_on_post(user=bob, post_id=post.pk, text=f"好 {n}")
    token = token_for(ada)
    page = gql(TIMELINE % "", token=token)
    assert "errors" not in page, page
    assert [c["text"] for c in page["data"]["moments"]["edges"][0]["node"]["comments"]] == ["好 0", "好 1", "好 2"]
    two = gql(TIMELINE % "(first: 2)", token=token)["data"]["moments"]["edges"][0]["node"]["comments"]
    assert [c["text"] for c in two] == ["好 0", "好 1"]
    refused = gql(TIMELINE % "(first: 0)", token=token)
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"
