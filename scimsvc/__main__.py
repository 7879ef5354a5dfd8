"""`python -m scimsvc`: the same as the `scimsvc` command."""

import sys

from scimsvc.cli import main

sys.exit(main())
