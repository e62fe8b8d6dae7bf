"""irec test suite (run with ./run_tests.sh)."""
