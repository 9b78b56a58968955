"""`python -m pgshift.controller`: the operator without the CLI (tests, debugging)."""

from pgshift.controller.run import run

if __name__ == "__main__":
    run()
