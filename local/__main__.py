"""`python -m local` (what `make run` starts): the whole of CAPPI on this machine."""

import sys

from local.run import main

sys.exit(main(sys.argv[1:]))
