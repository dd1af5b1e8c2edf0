"""Local mode: the deployed handlers wired together on one machine, with stand-ins for the AWS services."""
