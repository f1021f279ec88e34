"""The README's examples in one endpoint: payments, cart, signup and approvals.

perdure dev --embedded perdure.examples.everything:app
"""

from __future__ import annotations

from perdure import Endpoint
from perdure.examples.approvals import approvals
from perdure.examples.cart import cart
from perdure.examples.payments import payments
from perdure.examples.signup import signup

app = Endpoint([payments, cart, signup, approvals])
