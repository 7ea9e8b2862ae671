"""``python -m deep {train,eval,attack,...}``: see ``python -m deep --help``."""
from deep.cli import main

raise SystemExit(main())
