"""Pending logs left from before leases may have reached the CRM: mark their write started.

Before 0004 a pending row did not say whether its CRM write had begun. Marked so, such a
row is looked for in the CRM before it is sent again, instead of being sent blind.
"""

from django.db import migrations
from django.db.models import F


def mark_pending_writes(apps, schema_editor):
    for name in ("CallLog", "MessageLog"):
        model = apps.get_model("logs", name)
        model.objects.filter(status="pending", lease_until__isnull=True).update(
            crm_write_started_at=F("updated_at")
        )


def unmark_pending_writes(apps, schema_editor):
    for name in ("CallLog", "MessageLog"):
        model = apps.get_model("logs", name)
        model.objects.filter(status="pending", lease_until__isnull=True).update(crm_write_started_at=None)


class Migration(migrations.Migration):
    dependencies = [
        ("logs", "0004_log_lease"),
    ]

    operations = [
        migrations.RunPython(mark_pending_writes, unmark_pending_writes),
    ]
