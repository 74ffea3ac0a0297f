"""``python -m reactor``: the ``torsion`` command (see ``reactor.cli``)."""

import sys

from reactor.cli import main

if __name__ == "__main__":
    sys.exit(main())
