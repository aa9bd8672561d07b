"""The moments (朋友圈) timeline under 50 concurrent readers: requests/s, latency and SQL queries per page.

    .venv/bin/python bench/moments.py         (from the repository root; about half a minute)

Starts one Daphne on a free loopback port on a scratch PostgreSQL database and a unique Redis key prefix
(bench/servers.py, as bench/chat.py does) and removes it all at the end. Data: BENCH_READERS (50) readers, each friends with
BENCH_FRIENDS (20) authors out of a pool, all in one circle; every author posts BENCH_POSTS (10) moments,
half to friends and half to the circle (liked by a reader), each commented on. Each reader then pages its timeline
closed-loop over HTTP GraphQL (first page, then the next, again) for BENCH_SECONDS. The SQL count per page is
measured in-process on the same data. Quick mode (BENCH_QUICK=1): 20 readers, 40 authors, 2 s. Prints figures
(bench/report.py); asserts nothing about them.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import figure, quick  # noqa: E402
from bench.servers import (  # noqa: E402
    launch_server,
    percentile,
    run_django,
    scratch_environment,
    stop_processes,
    wait_listening,
)
from bench.turns import measuring  # noqa: E402

QUICK = quick()
READERS = int(os.environ.get("BENCH_READERS", "20" if QUICK else "50"))
FRIENDS = int(os.environ.get("BENCH_FRIENDS", "20"))
AUTHORS = int(os.environ.get("BENCH_AUTHORS", "40" if QUICK else "100"))
POSTS = int(os.environ.get("BENCH_POSTS", "10"))
PAGE = int(os.environ.get("BENCH_PAGE", "20"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "2" if QUICK else "5"))

MOMENTS = ("query Q($after: String) { moments(first: " + str(PAGE) + ", after: $after) { edges { node { id text "
           "likeCount likedByMe author { displayName } circle { name } comments { text author { displayName } } } } "
           "pageInfo { hasNextPage endCursor } } }")


def prepare_data(env: dict) -> dict:
    return run_django(env, f"""
import json
from types import SimpleNamespace
from django.db import connection
from django.test.utils import CaptureQueriesContext
from backend.accounts.models import User
from backend.accounts.services import DeviceInfo, _start_session
from backend.circles import services
from backend.circles.models import Friendship, Post, PostComment, PostLike
from backend.schema import schema
def user(i):
    return User.objects.create_user(f"+86136{{i:08d}}", display_name=f"m{{i}}")
authors = [user(i) for i in range({AUTHORS})]
readers = [user(100000 + i) for i in range({READERS})]
circle = services.create_circle(owner=authors[0], kind="interest", name="bench")
for u in authors[1:] + readers:
    services.join_circle(user=u, circle_id=circle.pk)
rows = []
for r, reader in enumerate(readers):
    for k in range({FRIENDS}):
        a = authors[(r * 7 + k) % len(authors)]
        rows += [Friendship(user=reader, friend=a), Friendship(user=a, friend=reader)]
Friendship.objects.bulk_create(rows, ignore_conflicts=True)
# The moments themselves in bulk, as create_post / like_post / comment_on_post leave them (this bench reads them):
# through the services, 400 posts with a like or a comment each took most of the set-up.
posts, likers = [], []
for a, author in enumerate(authors):
    for p in range({POSTS}):
        in_circle = bool(p % 2)  # circle posts (every reader sees them) are liked by a reader
        posts.append(Post(author=author, text=f"moment {{a}}-{{p}}", images=["https://img.example/x.jpg"],
                          circle=circle if in_circle else None, like_count=int(in_circle),
                          audience=Post.Audience.CIRCLE if in_circle else Post.Audience.FRIENDS))
        likers.append(readers[(a + p) % len(readers)] if in_circle else None)
Post.objects.bulk_create(posts, batch_size=1000)
PostLike.objects.bulk_create([PostLike(post=post, user=liker) for post, liker in zip(posts, likers) if liker])
PostComment.objects.bulk_create([PostComment(post=post, author_id=post.author_id, text="nice") for post in posts])
viewer = readers[0]
counts = []
after = None
for _ in range(3):
    with CaptureQueriesContext(connection) as ctx:
        result = schema.execute({MOMENTS!r}, variable_values={{"after": after}},
                                context_value=SimpleNamespace(user=viewer, device=None))
    assert not result.errors, result.errors
    counts.append(len(ctx.captured_queries))
    after = result.data["moments"]["pageInfo"]["endCursor"]
tokens = [_start_session(r, DeviceInfo()).access_token for r in readers]
print(json.dumps({{"tokens": tokens, "sql_per_page": counts}}))
""")


def reader_loop(url: str, token: str, stop: float, latencies: list[float], errors: list[str],
                pages: int | None = None) -> None:
    """Page the timeline until `stop` (or for `pages` pages)."""
    after = None
    while (time.perf_counter() < stop) if pages is None else (len(latencies) + len(errors) < pages):
        body = json.dumps({"query": MOMENTS, "variables": {"after": after}}).encode()
        request = urllib.request.Request(url, data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                data = json.loads(response.read())
        except Exception as exc:  # counted, not fatal: the table says how many failed
            errors.append(str(exc)[:100])
            continue
        latencies.append(time.perf_counter() - began)
        if data.get("errors"):
            errors.append(str(data["errors"])[:100])
            continue
        info = data["data"]["moments"]["pageInfo"]
        after = info["endCursor"] if info["hasNextPage"] and after is None else None  # page 1, page 2, again


def main() -> None:
    t0 = time.time()
    logs = Path(tempfile.mkdtemp(prefix="quanzi-bench-logs-"))
    try:
        with scratch_environment("moments") as env:
            process, port = launch_server(env, "backend.asgi:application", logs / "web.log")  # starts meanwhile
            url = f"http://127.0.0.1:{port}/graphql/"
            # The server builds its GraphQL schema (seconds) on its first request: ask one while data is written.
            schema_built = threading.Thread(target=build_schema, args=(process, port, logs / "web.log", url))
            try:
                schema_built.start()
                data = prepare_data(env)
                t_data = time.time()
                schema_built.join()
                warm_up(url, data["tokens"])
                print(f"set-up: data written after {t_data - t0:.1f} s, server warm after {time.time() - t0:.1f} s",
                      flush=True)
                with measuring():  # quick mode: the machine to itself (bench/turns.py)
                    measure(url, data)
            finally:
                stop_processes([process])
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print(f"total bench time {time.time() - t0:.0f} s")


def build_schema(process, port: int, log: Path, url: str) -> None:
    """Wait until the server listens, then send it one anonymous query: it builds its GraphQL schema."""
    wait_listening(process, port, log)
    request = urllib.request.Request(url, data=json.dumps({"query": "{ __typename }"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()


def warm_up(url: str, tokens: list[str]) -> None:
    """One page per reader before the clock starts: the first requests open the server's pooled database
    connections and fill its caches; neither is what a reader waits for in the measured phase."""
    errors: list[str] = []
    threads = [threading.Thread(target=reader_loop, args=(url, token, 0.0, [], errors, 1)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        print("warm-up errors:", *errors[:3], sep="\n  ")


def measure(url: str, data: dict) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + SECONDS
    threads = [threading.Thread(target=reader_loop, args=(url, token, stop, latencies, errors))
               for token in data["tokens"]]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    lat = sorted(latencies)
    print(f"\nbench/moments.py — one Daphne, {len(threads)} concurrent readers, {SECONDS:g} s, page of {PAGE}, "
          f"PostgreSQL{', quick' if QUICK else ''}")
    if errors:
        print("first errors:", *errors[:3], sep="\n  ")
    figure("moments.timeline.requests_per_s", round(len(lat) / elapsed, 1), "req/s")
    figure("moments.timeline.p50_ms", round(1000 * statistics.median(lat), 1) if lat else None, "ms")
    figure("moments.timeline.p99_ms", round(1000 * percentile(lat, 0.99), 1) if lat else None, "ms")
    figure("moments.timeline.failed", len(errors), "requests", "= 0")
    for page, count in enumerate(data["sql_per_page"], start=1):
        figure(f"moments.timeline.sql_per_page{page}", count, "queries")


if __name__ == "__main__":
    main()
