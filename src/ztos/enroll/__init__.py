"""Zero-touch enrolment: bootstrap tokens, host profiles, and the exchange.

``tokens`` and ``profile`` are pure; ``server`` runs inside a directory
transaction on the controller; ``client`` runs on the enrolling host, which
generates its own keys so private keys never leave it.
"""
