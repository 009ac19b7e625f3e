from hasync.cli import main

raise SystemExit(main())
