from services.mediation.entrypoints.cli import main

raise SystemExit(main())
