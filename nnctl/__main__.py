"""`python -m nnctl`: the same command line as `nnctl`."""

from nnctl.cli import run

if __name__ == "__main__":
    run()
