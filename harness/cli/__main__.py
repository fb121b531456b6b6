"""``python -m harness.cli`` runs the ``lowbit`` command."""

from harness.cli import main

main()
