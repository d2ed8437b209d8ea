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


class Wallet(models.Model):
    """A balance that check-then-act endpoints debit: nothing but their own check keeps it
    from going negative."""

    balance = models.IntegerField(default=0)


class ConstrainedWallet(models.Model):
    """The same, with the database's own CHECK (balance >= 0): a debit that would overdraw
    it fails in the UPDATE."""

    balance = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                check=models.Q(balance__gte=0), name="constrainedwallet_balance_gte_0"
            )
        ]


class Debit(models.Model):
    """One debit a withdraw endpoint made, of a Wallet or (`constrained_wallet`) of a
    ConstrainedWallet: one ledger, so one query counts the overdrafts of both.
    `balance_after` is the wallet's balance as this debit's UPDATE left it (the UPDATE
    holds the row's lock until the commit, so these follow the commit order)."""

    wallet = models.ForeignKey(Wallet, null=True, on_delete=models.CASCADE)
    constrained_wallet = models.ForeignKey(ConstrainedWallet, null=True, on_delete=models.CASCADE)
    amount = models.IntegerField()
    balance_after = models.IntegerField()


class Doctor(models.Model):
    """Hermitage's G2-item (write skew): at least one doctor must stay on call."""

    on_call = models.BooleanField(default=True)
