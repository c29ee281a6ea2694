"""`python -m cnish` — the same entry point as the `cnish` executable."""

from cnish.main import main

main()
