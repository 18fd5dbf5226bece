"""`python -m kernelsmith` runs the command line."""

from kernelsmith.cli import main

main()
