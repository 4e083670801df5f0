"""ZTOS: a zero trust overlay network for Linux hosts.

Layering (enforced by import-linter, see .importlinter):
``model``/``errors``/``addressing`` at the bottom, then the pure cores
(``directory``, ``pki``, ``audit``, ``enroll``, ``netmap``), then services
(``controller``, ``agent``), then the edges (``api``, ``cli``, ``lab``).
"""

__version__ = "0.1.0"
