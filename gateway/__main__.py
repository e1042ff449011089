import sys

from hearthgate.cli import main

sys.exit(main())
