"""What runs tell their users: console output, metrics files, summaries."""
