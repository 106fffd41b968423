"""The kaido command line: one subcommand per job."""
