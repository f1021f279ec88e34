"""The test app's services and a subscription sink together: traffic for every panel."""

from __future__ import annotations

from perdure import Endpoint
from tests.apps import events, testapp

app = Endpoint([*testapp.app.services.values(), events.tally])
