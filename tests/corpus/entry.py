"""Bad inputs refused before cnish has chosen a plugin (see README.md for the format).

stdin (code 6), the CNI_* environment and CNI_ARGS syntax (code 4), CNI_NETNS (code 4),
cniVersion (code 1) and the network name (code 7): cni.main(), config.parse_env(),
decode_config() and the first checks of engine.Operation decide them before the config's (or the
executable's) plugin type is looked at, so they are the same for every plugin behind one
executable. SCOPE = "executable": the test runs them once per executable name (`cnish`,
`host-local`, `static`, ...), against the first target, by name, that is exec'd under it.
"""

SCOPE = "executable"

_HOSTILE = {            # suffix of a case id -> a hostile value fragment
    "space": "a b",
    "semicolon": "a;touch $CANARY",
    "cmdsubst": "$(touch $CANARY)",
    "backquote": "`touch $CANARY`",
    "squote": "a'b",
    "dquote": 'a"b',
    "newline": "a\nb",
    "dash": "-a",
    "slash": "a/b",
    "traversal": "../../etc",
    "dot": ".",
    "dotdot": "..",
    "nonascii": "n\u00e9t",
}

_NAMES = {                 # bad network names (code 7 naming the name)
    **{k: v for k, v in _HOSTILE.items()},
    "tab": "a\tb",
    "colon": "a:b",
    "long256": "n" * 256,
    "empty": "",
    "number": 7,
    "list": ["net"],
    "null": None,
    "nul": "a\u0000b",
}

_CONTAINER_IDS = {**_HOSTILE, "long256": "c" * 256, "underscore-first": "_ctr", "hash": "c#1",
                  "at": "c@1", "tab": "c\tt"}

_IFNAMES = {             # short enough (<= 15 bytes) that only the characters are wrong
    "space": "eth 0", "semicolon": "e;id", "cmdsubst": "$(id)", "backquote": "`id`",
    "squote": "eth'0", "dquote": 'eth"0', "newline": "eth\n0", "dash": "-eth0",
    "dash-option": "-h", "slash": "eth/0", "traversal": "../../etc", "dot": ".", "dotdot": "..",
    "nonascii": "\u00e9th0", "16bytes": "eth0123456789012", "multibyte-16bytes": "\u00e9" * 8,
    "colon": "eth:0", "hash": "eth#0", "at": "eth@0", "tab": "eth\t0", "pct": "eth%d",
    # (the kernel refuses them, as the names of /proc/sys/net/*/conf/all and default: the
    # bridge plugin would have made the bridge first)
    "all": "all", "default": "default",
}

CASES = [
    # -- stdin: unreadable, not JSON, too large (code 6) -----------------------------------------
    {"id": "stdin-empty", "stdin": b"", "code": 6, "field": "stdin"},
    {"id": "stdin-whitespace", "stdin": b" \n\t ", "code": 6, "field": "stdin"},
    {"id": "stdin-truncated", "stdin": b'{"cniVersion": "1.0.0", "name": "corpusnet", "ty',
     "code": 6, "field": "stdin"},
    {"id": "stdin-truncated-string", "stdin": b'{"cniVersion": "1.0.0", "name": "corp',
     "code": 6, "field": "stdin"},
    {"id": "stdin-not-json", "stdin": b"name=corpusnet type=bridge", "code": 6, "field": "stdin"},
    {"id": "stdin-yaml", "stdin": b"cniVersion: 1.0.0\nname: corpusnet\ntype: bridge\n",
     "code": 6, "field": "stdin"},
    {"id": "stdin-array", "stdin": b'[{"cniVersion": "1.0.0"}]', "code": 6, "field": "stdin"},
    {"id": "stdin-string", "stdin": b'"corpusnet"', "code": 6, "field": "stdin"},
    {"id": "stdin-null", "stdin": b"null", "code": 6, "field": "stdin"},
    {"id": "stdin-number", "stdin": b"42", "code": 6, "field": "stdin"},
    {"id": "stdin-two-documents", "stdin": b'{"name": "a"} {"name": "b"}', "code": 6,
     "field": "stdin"},
    {"id": "stdin-trailing-comma", "stdin": b'{"cniVersion": "1.0.0", "name": "n",}', "code": 6,
     "field": "stdin"},
    {"id": "stdin-single-quotes", "stdin": b"{'cniVersion': '1.0.0'}", "code": 6,
     "field": "stdin"},
    {"id": "stdin-nan", "stdin": b'{"cniVersion": "1.0.0", "name": "n", "mtu": NaN}', "code": 6,
     "field": "stdin"},
    {"id": "stdin-float-overflow", "stdin": b'{"cniVersion": "1.0.0", "name": "n", "x": 1e400}',
     "code": 6, "field": "stdin"},     # (an unknown key: it was an internal error, code 999)
    {"id": "stdin-bad-utf8", "stdin": b'{"cniVersion": "1.0.0", "name": "\xff\xfe"}', "code": 6,
     "field": "stdin"},
    {"id": "stdin-utf16-bom", "stdin": '{"name": "n"}'.encode("utf-16"), "code": 6,
     "field": "stdin"},
    {"id": "stdin-nul-byte", "stdin": b'{"cniVersion": "1.0.0",\x00 "name": "n"}', "code": 6,
     "field": "stdin"},
    {"id": "stdin-control-char-in-string", "stdin": b'{"cniVersion": "1.0.0", "name": "a\x01b"}',
     "code": 6, "field": "stdin"},
    {"id": "stdin-deep-nesting", "stdin": b'{"x": ' + b"[" * 200000 + b"]" * 200000 + b"}",
     "code": 6, "field": "stdin"},
    {"id": "stdin-oversized", "stdin": b'{"cniVersion": "1.0.0", "name": "corpusnet", "pad": "'
     + b"x" * (4 << 20) + b'"}', "code": 6, "field": "stdin"},
    {"id": "stdin-oversized-whitespace", "stdin": b" " * ((4 << 20) + 1) + b"{}", "code": 6,
     "field": "stdin"},
    {"id": "stdin-name-float-overflow",
     "stdin": b'{"cniVersion": "1.0.0", "name": 1e400, "type": "bridge"}', "code": 6,
     "field": "stdin"},
    {"id": "stdin-version-float-overflow",
     "stdin": b'{"cniVersion": 1e400, "name": "corpusnet", "type": "bridge"}', "code": 6,
     "field": "stdin"},

    # -- CNI_COMMAND and missing variables (code 4, naming the variable) --------------------------
    {"id": "command-unknown", "env": {"CNI_COMMAND": "FROB"}, "code": 4, "field": "CNI_COMMAND"},
    {"id": "command-lowercase", "env": {"CNI_COMMAND": "add"}, "code": 4, "field": "CNI_COMMAND"},
    {"id": "command-injection", "env": {"CNI_COMMAND": "ADD;touch $CANARY"}, "code": 4,
     "field": "CNI_COMMAND"},
    {"id": "command-padded", "env": {"CNI_COMMAND": " ADD"}, "code": 4, "field": "CNI_COMMAND"},
    {"id": "missing-containerid", "env": {"CNI_CONTAINERID": None}, "code": 4,
     "field": "CNI_CONTAINERID"},
    {"id": "empty-containerid", "env": {"CNI_CONTAINERID": ""}, "code": 4,
     "field": "CNI_CONTAINERID"},
    {"id": "missing-netns", "env": {"CNI_NETNS": None}, "code": 4, "field": "CNI_NETNS"},
    {"id": "missing-ifname", "env": {"CNI_IFNAME": None}, "code": 4, "field": "CNI_IFNAME"},
    {"id": "missing-path", "env": {"CNI_PATH": None}, "code": 4, "field": "CNI_PATH"},
    {"id": "missing-all", "env": {"CNI_CONTAINERID": None, "CNI_NETNS": None, "CNI_IFNAME": None,
                                  "CNI_PATH": None}, "code": 4, "field": "CNI_CONTAINERID"},
    {"id": "check-missing-netns", "command": "CHECK", "prev": True, "env": {"CNI_NETNS": None},
     "code": 4, "field": "CNI_NETNS"},
    {"id": "del-missing-ifname", "command": "DEL", "env": {"CNI_IFNAME": None}, "code": 4,
     "field": "CNI_IFNAME"},
    {"id": "del-missing-containerid", "command": "DEL", "env": {"CNI_CONTAINERID": None},
     "code": 4, "field": "CNI_CONTAINERID"},

    # -- bad container ids (code 4) ------------------------------------------------------------
    *({"id": f"containerid-{k}", "env": {"CNI_CONTAINERID": v}, "code": 4,
       "field": "CNI_CONTAINERID"} for k, v in _CONTAINER_IDS.items()),
    {"id": "del-containerid-traversal", "command": "DEL",
     "env": {"CNI_CONTAINERID": "../../etc/passwd"}, "code": 4, "field": "CNI_CONTAINERID"},

    # -- bad interface names (code 4) ----------------------------------------------------------
    *({"id": f"ifname-{k}", "env": {"CNI_IFNAME": v}, "code": 4, "field": "CNI_IFNAME"}
      for k, v in _IFNAMES.items()),
    {"id": "del-ifname-injection", "command": "DEL", "env": {"CNI_IFNAME": "$(touch $CANARY)"},
     "code": 4, "field": "CNI_IFNAME"},

    # -- CNI_ARGS (code 4) ---------------------------------------------------------------------
    {"id": "args-no-equals", "args": "IgnoreUnknown=1;FOO", "code": 4, "field": "CNI_ARGS"},
    {"id": "args-empty-key", "args": "=bar", "code": 4, "field": "CNI_ARGS"},
    {"id": "args-two-equals", "args": "IgnoreUnknown=1;A=b=c", "code": 4, "field": "CNI_ARGS"},

    # -- CNI_NETNS that is not a usable container namespace (code 4) ---------------------------
    {"id": "netns-missing", "netns": "/var/run/netns/cnish-corpus-does-not-exist", "code": 4,
     "field": "CNI_NETNS"},
    {"id": "netns-regular-file", "netns": "$SANDBOX/file", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-directory", "netns": "$SANDBOX/dir", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-dev-null", "netns": "/dev/null", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-mnt-namespace", "netns": "/proc/self/ns/mnt", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-user-namespace", "netns": "/proc/self/ns/user", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-own-proc-self", "netns": "/proc/self/ns/net", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-own-thread-self", "netns": "/proc/thread-self/ns/net", "code": 4,
     "field": "CNI_NETNS"},
    {"id": "netns-own-by-name", "netns": "$HOSTNS", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-host-init-proc-1", "netns": "/proc/1/ns/net", "pidns": True, "code": 4,
     "field": "CNI_NETNS"},
    {"id": "netns-relative", "netns": "var/run/netns/x", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-dotdot", "netns": "/var/run/netns/../netns/x", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-newline", "netns": "/var/run/netns/a\nb", "code": 4, "field": "CNI_NETNS"},
    {"id": "netns-injection", "netns": "/var/run/netns/$(touch $CANARY)", "code": 4,
     "field": "CNI_NETNS"},
    {"id": "check-netns-missing", "command": "CHECK", "prev": True,
     "netns": "/var/run/netns/cnish-corpus-does-not-exist", "code": 4, "field": "CNI_NETNS"},
    {"id": "check-netns-own", "command": "CHECK", "prev": True, "netns": "/proc/self/ns/net",
     "code": 4, "field": "CNI_NETNS"},

    # -- cniVersion (code 1; not a string: code 7) ---------------------------------------------
    {"id": "version-future", "set": {"cniVersion": "9.9.9"}, "code": 1, "field": "9.9.9"},
    {"id": "version-unknown-minor", "set": {"cniVersion": "0.5.0"}, "code": 1, "field": "0.5.0"},
    {"id": "version-short", "set": {"cniVersion": "1.0"}, "code": 1, "field": "1.0"},
    {"id": "version-v-prefix", "set": {"cniVersion": "v1.0.0"}, "code": 1, "field": "v1.0.0"},
    # (an empty or null cniVersion is not here: libcni reads either as 0.1.0, and so does cnish)
    {"id": "version-number", "set": {"cniVersion": 1.0}, "code": 7, "field": "cniVersion"},
    {"id": "version-list", "set": {"cniVersion": ["1.0.0"]}, "code": 7, "field": "cniVersion"},
    {"id": "check-version-0.3.1", "command": "CHECK", "prev": True,
     "set": {"cniVersion": "0.3.1", "prevResult.cniVersion": "0.3.1"}, "code": 1,
     "field": "CHECK"},
    {"id": "check-version-0.1.0", "command": "CHECK", "set": {"cniVersion": "0.1.0"}, "code": 1,
     "field": "CHECK"},
    {"id": "check-version-missing", "command": "CHECK", "set": {"cniVersion": "@drop"},
     "code": 1, "field": "CHECK"},

    # -- the network name (code 7) -------------------------------------------------------------
    *({"id": f"name-{k}", "set": {"name": v}, "code": 7, "field": "name"}
      for k, v in _NAMES.items()),
    {"id": "name-missing", "set": {"name": "@drop"}, "code": 7, "field": "name"},
    {"id": "del-name-traversal", "command": "DEL", "set": {"name": "../../../etc"}, "code": 7,
     "field": "name"},
]
