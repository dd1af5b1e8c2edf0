"""Developer tools that stand beside infra/ and local/ (never bundled into a Lambda)."""
