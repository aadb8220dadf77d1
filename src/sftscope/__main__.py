from sftscope.cli import main

raise SystemExit(main())
