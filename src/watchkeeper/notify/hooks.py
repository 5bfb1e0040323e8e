"""Python alert hooks (seed 004's custom integrations): callables that receive every alert they are routed.

A hook is named ``module:function`` in the settings (``alerts.hooks`` for every alert, or a group's
``hooks``), registered by a plugin's entry point in the group ``watchkeeper.alert_hooks``, or registered in
process with ``register_alert_hook``. It is called with the ``AlertMessage``; raising an exception makes
the delivery fail and be retried like any other channel's.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from importlib.metadata import entry_points

from ..delivery.dispatcher import Sender, SendOutcome
from ..store.models import Delivery
from .message import AlertMessage, alert_sender

AlertHook = Callable[[AlertMessage], object]
ENTRY_POINT_GROUP = "watchkeeper.alert_hooks"

_registered: dict[str, AlertHook] = {}
_lock = threading.Lock()


def register_alert_hook(name: str, hook: AlertHook) -> None:
    """Make ``hook`` reachable as ``name`` from the settings (``alerts.hooks: [name]``)."""
    with _lock:
        _registered[name] = hook


def resolve(name: str) -> AlertHook:
    """The hook called ``name``: registered in process, by an entry point, or imported as ``module:function``."""
    with _lock:
        if name in _registered:
            return _registered[name]
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            return point.load()
    module, _, attribute = name.partition(":")
    if not module or not attribute:
        raise LookupError(f"no alert hook '{name}': register it, or name it as module:function")
    target = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise LookupError(f"alert hook '{name}' is not callable")
    return target


def hook_sender() -> Sender:
    """The dispatcher's ``hook`` channel: ``delivery.target`` names the hook."""

    @alert_sender
    def send(delivery: Delivery, message: AlertMessage) -> SendOutcome:
        try:
            hook = resolve(delivery.target)
        except Exception as exc:  # a hook that cannot be found or imported will not be found next time either
            return SendOutcome(ok=False, error=f"{type(exc).__name__}: {exc}", retry=False)
        try:
            hook(message)
        except Exception as exc:  # the site's code failing is its delivery failing, retried later
            return SendOutcome(ok=False, error=f"the hook raised {type(exc).__name__}: {exc}", retry=True)
        return SendOutcome(ok=True)

    return send
