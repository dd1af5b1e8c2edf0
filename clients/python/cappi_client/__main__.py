"""`python -m cappi_client ...`: the same command as `cappi-client`."""

import sys

from cappi_client.cli import main

sys.exit(main())
