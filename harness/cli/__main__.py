"""``python -m harness.cli`` runs the ``lowbit`` command."""

from harness.cli import main

# Guarded: worker processes started with "spawn" import the parent's main module again.
if __name__ == "__main__":
    main()
