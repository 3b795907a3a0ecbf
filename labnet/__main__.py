"""`python -m labnet` — handy under sudo with an explicit interpreter."""

from labnet.cli import main

main()
