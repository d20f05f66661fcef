"""``python -m translearn.advise``."""

from translearn.advise.cli import main

if __name__ == "__main__":
    main()
