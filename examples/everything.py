"""The README's examples in one endpoint: payments, cart, signup and approvals.

perdure dev --embedded examples.everything:app
"""

from __future__ import annotations

from examples.approvals import approvals
from examples.cart import cart
from examples.payments import payments
from examples.signup import signup
from sdk import Endpoint

app = Endpoint([payments, cart, signup, approvals])
