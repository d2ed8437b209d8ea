"""`manage.py racy_endpoints`: the lab's endpoints as JSON, without a database, so that a
test can hold the stacks' x-racy.endpoints lists to them (tests/it/endpoints.rs)."""
import json

from django.core.management.base import BaseCommand

from demo.registry import endpoints


class Command(BaseCommand):
    help = "Print the lab's endpoints as JSON: name, path, method, check, countermeasure, engines."
    # the system checks are not needed to list endpoints, and no database is
    requires_system_checks = []

    def handle(self, *args, **options):
        described = [e.describe() for e in endpoints().values()]
        self.stdout.write(json.dumps(described, indent=2))
