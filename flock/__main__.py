from flock.cli import main

raise SystemExit(main())
