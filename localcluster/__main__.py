"""``python -m localcluster build|up|down|status``."""

from localcluster.cli import main

raise SystemExit(main())
