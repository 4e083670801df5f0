"""The ZTOS directory: every record of a network, with revisions and a change feed.

``Store`` is the protocol every back end implements (SQLite embedded today,
OpenLDAP later); ``open_store`` picks the back end from a path or URL.
"""

from ztos.directory.signal import ChangeSignal
from ztos.directory.store import Change, Store, Transaction, open_store

__all__ = ["Change", "ChangeSignal", "Store", "Transaction", "open_store"]
