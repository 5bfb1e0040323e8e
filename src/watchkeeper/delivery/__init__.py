"""Outbound deliveries: an outbox in the database, a dispatcher that retries with backoff, a delivery log.

Job webhooks use it now; alerts will add channels (one sender each).
"""

from .dispatcher import Dispatcher, Sender, SendOutcome
from .outbox import enqueue
from .webhook import SIGNATURE_HEADER, sign, verify, webhook_sender

__all__ = ["SIGNATURE_HEADER", "Dispatcher", "SendOutcome", "Sender", "enqueue", "sign", "verify", "webhook_sender"]
