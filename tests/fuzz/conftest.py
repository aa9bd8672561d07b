"""The fuzzers run against a real Daphne process, as tests/e2e does."""

from tests.e2e.conftest import daphne_nodes  # noqa: F401  (the fixture, shared)
