"""referrals.StaffBranch was a stand-in until advisors owned staff records; advisors' ManagerProfile.branch is
the one record now (read through core.staff_directory). A branch set only here is carried over: a client
manager without a ManagerProfile gets one in that branch, not accepting new customers (operations decide that
in the advisors admin); an existing ManagerProfile keeps its own branch."""

from django.db import migrations


def carry_branches_to_advisors(apps, schema_editor):
    StaffBranch = apps.get_model("referrals", "StaffBranch")
    ManagerProfile = apps.get_model("advisors", "ManagerProfile")
    have_profile = set(ManagerProfile.objects.values_list("user_id", flat=True))
    ManagerProfile.objects.bulk_create([
        ManagerProfile(user_id=row.user_id, branch=row.branch[:64], accepting=False)
        for row in StaffBranch.objects.order_by("user_id") if row.user_id not in have_profile
    ])


def bring_branches_back(apps, schema_editor):
    StaffBranch = apps.get_model("referrals", "StaffBranch")
    ManagerProfile = apps.get_model("advisors", "ManagerProfile")
    StaffBranch.objects.bulk_create([StaffBranch(user_id=uid, branch=branch) for uid, branch
                                     in ManagerProfile.objects.values_list("user_id", "branch")])


class Migration(migrations.Migration):

    dependencies = [
        ("referrals", "0001_referral_engine"),
        ("advisors", "0001_client_managers"),
    ]

    operations = [
        migrations.RunPython(carry_branches_to_advisors, bring_branches_back),
        migrations.DeleteModel(name="StaffBranch"),
    ]
