from services.notify.entrypoints.cli import main

raise SystemExit(main())
