"""The controller's REST API (FastAPI), served over mutually authenticated TLS."""
