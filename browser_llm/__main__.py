"""`python -m browser_llm …`: the command line (browser_llm/cli.py)."""
import sys

from .cli import main

sys.exit(main())
