"""`python -m projector`: the same command as `projector`."""

from projector.cli import main

main()
