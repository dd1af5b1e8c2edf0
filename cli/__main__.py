"""`python -m cli` is the same as `cappi`."""

import sys

from cli.main import main

sys.exit(main())
