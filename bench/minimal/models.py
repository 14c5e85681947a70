from django.db import models


class Contact(models.Model):
    phone_number = models.CharField(max_length=32, db_index=True)
    name = models.CharField(max_length=255)
    contact_type = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.name


class CallLog(models.Model):
    session_id = models.CharField(max_length=128, unique=True)
    contact_id = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    note = models.TextField()

    def __str__(self) -> str:
        return self.session_id


class Mark(models.Model):
    """A row written by BENCH_EXTRA_WORK's `write:` round trips (bench/minimal/wsgi.py)."""

    step = models.CharField(max_length=32)

    def __str__(self) -> str:
        return self.step
