import sys

from labkit_course.cli import main

sys.exit(main())
