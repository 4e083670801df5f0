"""``python -m ztos`` runs the CLI."""

from ztos.cli.main import main

main()
