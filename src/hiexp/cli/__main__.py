"""``python -m hiexp.cli``: the same as the ``hiexp`` command."""

from hiexp.cli import main

main()
