"""`python -m pgshift.controller`: the operator without the CLI (tests, debugging)."""

import sys

from pgshift.controller.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
