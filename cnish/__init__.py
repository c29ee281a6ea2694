"""cnish: a CNI plugin that does its work through ordinary commands.

For every CNI operation cnish builds an ordered plan of `ip`, `iptables`, `sysctl`, ... commands
from the recipes in plans/ and the Jinja templates in templates/, then prints it (dry-run) or runs
it with rollback. This module stays tiny: runtimes start cnish for every container, and whatever
is imported here is paid for on every start.
"""

__version__ = "0.1.0"
