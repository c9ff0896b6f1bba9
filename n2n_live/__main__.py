"""`python -m n2n_live` = `n2n-live`."""
from .cli import main

main()
