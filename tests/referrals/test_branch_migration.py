"""The stand-in referrals.StaffBranch is gone: migrating carries a branch set only there into advisors'
ManagerProfile (the one staff record), and leaves a branch advisors already had alone."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backend.advisors.models import ManagerProfile
from backend.referrals import selectors

from .conftest import new_user


@pytest.mark.django_db(transaction=True)
def test_migration_carries_stand_in_branches_to_advisors():
    mia, max_ = new_user("Mia", role="client_manager"), new_user("Max", role="client_manager")
    ManagerProfile.objects.create(user=max_, branch="Chaoyang")  # advisors' record wins
    before, after = [("referrals", "0001_referral_engine")], [("referrals", "0002_staff_branches_move_to_advisors")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        StaffBranch = old.get_model("referrals", "StaffBranch")
        for user in (mia, max_):  # (unapplying 0002 already copied Max's advisors branch back here)
            StaffBranch.objects.update_or_create(user_id=user.pk, defaults={"branch": "Haidian"})
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
    try:
        profiles = {p.user_id: (p.branch, p.accepting) for p in ManagerProfile.objects.all()}
        assert profiles == {mia.pk: ("Haidian", False), max_.pk: ("Chaoyang", True)}
    finally:  # back to every app's newest migration, so later tests see the whole schema
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    from backend.core import staff_directory

    assert staff_directory.branches_of([mia.pk, max_.pk]) == {mia.pk: "Haidian", max_.pk: "Chaoyang"}
    assert selectors.staff_leaderboard() == []  # no shares yet; the read works on the new schema
