"""``python -m web``: serve the demo (``--help`` for the options)."""
from .app import main

main()
