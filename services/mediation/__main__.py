from services.mediation.cli import main

raise SystemExit(main())
