"""``python -m charmspace …`` is the ``charmspace`` command."""

from charmspace.cli import main

main()
