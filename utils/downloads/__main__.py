"""``python -m utils.downloads``: the command line of install.sh."""

import sys

from utils.downloads.cli import main

sys.exit(main())
