"""`python -m tools.fuzz`: see tools.fuzz.cli."""

from tools.fuzz.cli import main

main()
