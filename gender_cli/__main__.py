import sys

from gender_cli.main import main

sys.exit(main())
