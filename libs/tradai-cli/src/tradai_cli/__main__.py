import sys

from tradai_cli.main import main

sys.exit(main())
