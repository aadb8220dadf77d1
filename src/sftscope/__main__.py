"""`python -m sftscope`: the command line."""

from sftscope.cli import main

if __name__ == "__main__":  # importing the module (pkgutil.walk_packages, docs tools) must not run the CLI
    raise SystemExit(main())
