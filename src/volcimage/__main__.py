from volcimage.cli import main

raise SystemExit(main())
