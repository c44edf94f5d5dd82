"""``python -m services.trajectory assess DIR | simulate ...``"""

from services.trajectory.cli import main

raise SystemExit(main())
