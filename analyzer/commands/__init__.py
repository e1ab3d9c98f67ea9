"""One module per command; each has USAGE, SUMMARY and run(argv, debug) -> exit code."""
