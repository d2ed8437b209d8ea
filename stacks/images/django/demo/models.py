from django.db import models


class Account(models.Model):
    balance = models.IntegerField(default=0)
    # Bumped by every write of the optimistic_version endpoint (compare-and-swap).
    version = models.IntegerField(default=0)


class Transaction(models.Model):
    """One increment of an account's balance (not a database transaction)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE)
    amount = models.IntegerField()
    timestamp = models.DateTimeField(auto_now_add=True)


class Thing(models.Model):
    """Something created on first use, with a unique name (get_or_create's happy case)."""

    name = models.CharField(max_length=100, unique=True)


class LooseThing(models.Model):
    """The same without a unique constraint: nothing stops duplicates."""

    name = models.CharField(max_length=100)


class Job(models.Model):
    """Created by a task endpoint, which hands its id to a Celery task (seed 003)."""

    created = models.DateTimeField(auto_now_add=True)


class TaskRun(models.Model):
    """One run of the check_job task: whether it found its Job. job_id is a plain integer
    (not a foreign key), so a run that did not find its Job can still be recorded."""

    job_id = models.BigIntegerField()
    found = models.BooleanField()
