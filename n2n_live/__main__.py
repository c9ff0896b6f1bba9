"""`python -m n2n_live` = `n2n-live`."""
from .commands.cli import main

main()
