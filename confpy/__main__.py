import sys

from confpy.cli import main

sys.exit(main())
