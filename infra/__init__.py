"""AWS wiring of CAPPI (CDK): one construct per concern, the typed stage config, and Docker-free Lambda bundling."""

import os

# jsii prints a Node end-of-life banner on Node 20 whenever aws_cdk is first imported; it is noise in synth and
# test output, not a problem for synthesis. Set here so every importer of infra.* gets it, not only app.py.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
