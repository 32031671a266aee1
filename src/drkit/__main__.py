"""`python -m drkit`: the same entry point as the `drkit` console script."""

from drkit.cli.entry import main

if __name__ == "__main__":
    main()
