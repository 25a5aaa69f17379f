"""``python -m tui [WORKSPACE]``: the terminal UI on a workspace folder."""

import sys

from tui.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
