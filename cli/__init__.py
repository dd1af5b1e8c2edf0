"""`cappi`: ops' and clubs' command for a deployed stage or local mode (see `cappi --help`)."""
