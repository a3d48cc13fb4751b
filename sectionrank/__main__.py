"""`python -m sectionrank` runs the command line."""

from sectionrank.cli import main

main()
