import sys

from fastalex.train.cli import main

sys.exit(main())
