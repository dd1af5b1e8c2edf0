"""Where a club's credential lives, the one definition infra, ingest, `cappi` and local mode read.

Each secret name of the registry (`auth.secret`, unchanged in format) is an SSM Parameter Store SecureString
parameter named "/" + that name, standard tier, encrypted with the AWS managed key `aws/ssm`. A parameter costs
nothing a month and is no resource of the stack: ops write it with `cappi secrets set`, so the stack's size and its
IAM policy do not grow with the registry. The ingest role may read the parameters matching `parameter_patterns`:
one `<directory>/*` per distinct directory of the registry's names (a name alone in its directory, or at the root,
is granted by itself), at most MAX_PARAMETER_PATTERNS of them.
"""

from __future__ import annotations

from collections.abc import Iterable

# Past this many patterns the registry's names are scattered; a policy document is limited too (10,240 characters
# for a role's inline policies together), so synth refuses rather than grow a statement per source.
MAX_PARAMETER_PATTERNS = 20
# Parameter Store's value limits per tier (bytes of the UTF-8 value): an mTLS certificate chain with its key can
# pass the standard tier's and needs the advanced one ($0.05 a parameter-month).
STANDARD_TIER_MAX_BYTES = 4096
ADVANCED_TIER_MAX_BYTES = 8192
# The template's metadata entry naming each enabled source's parameters (what `cappi preflight` checks exist).
CREDENTIALS_METADATA = "CappiClubCredentials"


class CredentialLayoutError(ValueError):
    """The registry's secret names cannot be granted with a bounded number of patterns."""


def parameter_name(secret_name: str) -> str:
    """The SSM parameter holding the value of registry secret `secret_name`."""
    return "/" + secret_name


def parameter_patterns(secret_names: Iterable[str]) -> tuple[str, ...]:
    """The parameter names (with `*` for a whole directory) the ingest role may read, sorted: per directory of the
    registry's parameter names `<directory>/*` when it holds two names or more, else the name itself. A name at the
    root is always granted by itself (a `/*` would be every parameter of the account)."""
    by_directory: dict[str, set[str]] = {}
    for name in {parameter_name(n) for n in secret_names}:
        by_directory.setdefault(name.rsplit("/", 1)[0], set()).add(name)
    patterns: set[str] = set()
    for directory, names in by_directory.items():
        if directory and len(names) > 1:
            patterns.add(directory + "/*")
        else:
            patterns.update(names)
    if len(patterns) > MAX_PARAMETER_PATTERNS:
        raise CredentialLayoutError(
            f"the registry's secret names need {len(patterns)} grants ({', '.join(sorted(patterns)[:5])}, ...): "
            f"at most {MAX_PARAMETER_PATTERNS} are allowed, so the ingest role's policy stays the same size however "
            "many sources there are. Name secrets under a few shared directories, e.g. cappi/<stage>/clubs/<source>."
        )
    return tuple(sorted(patterns))


def tier_for(value: str) -> str:
    """The parameter tier a value needs: Standard (free) up to 4 KB, Advanced up to 8 KB; longer is refused."""
    size = len(value.encode())
    if size > ADVANCED_TIER_MAX_BYTES:
        raise ValueError(f"a credential of {size} bytes is longer than Parameter Store's {ADVANCED_TIER_MAX_BYTES}")
    return "Standard" if size <= STANDARD_TIER_MAX_BYTES else "Advanced"


def parameter_arn(pattern: str, *, partition: str, region: str, account: str) -> str:
    """The ARN of a parameter (or pattern) as IAM matches it: `arn:...:parameter/a/b` for parameter `/a/b`."""
    return f"arn:{partition}:ssm:{region}:{account}:parameter{pattern}"
