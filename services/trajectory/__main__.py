"""``python -m services.trajectory assess | worker | replay`` (the simulator of test days is
``python -m tests.support.simulate``)"""

import os
import sys

from services.trajectory.entrypoints.cli import main

code = main()
if sys.argv[1:2] == ["assess"]:
    # A batch run ends here with its output written: leave without tearing down a million points'
    # worth of arrays object by object (a tenth of a second and more on a big day).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
