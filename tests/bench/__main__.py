import sys

from tests.bench.driver import main

sys.exit(main())
