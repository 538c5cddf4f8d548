#!/usr/bin/env bash
# contrib/berth.service, the systemd unit the README gives, as systemd reads it: there is
# no systemd running here or in the VM, so it is linted with `systemd-analyze verify`
# (pointing at the built binary), and its command line is checked against berth's own.
source "$(dirname "$0")/lib.sh"
trap - EXIT
UNIT="$ROOT/contrib/berth.service"
DIR=$(mktemp -d)
sed "s#/usr/local/bin/berth #$BERTH_BIN #" "$UNIT" > "$DIR/berth.service"
out=$(systemd-analyze verify "$DIR/berth.service" 2>&1) && rc=0 || rc=$?
expect_eq "systemd-analyze verify accepts the unit" "0" "$rc"
# DelegateSubgroup= came with systemd 254; older versions say they ignore it, nothing else.
version=$(systemd-analyze --version | awk 'NR==1 {print $2}')
others=$(grep -v "^$" <<<"$out" | { [ "$version" -lt 254 ] && grep -v "Unknown key 'DelegateSubgroup'" || cat; } | wc -l)
expect_eq "no other warning (systemd $version)" "0" "$others"
expect_eq "the unit delegates the cgroup subtree" "Delegate=yes" "$(grep -x 'Delegate=yes' "$UNIT")"
expect_eq "its leaf is the one berth moves itself into" "DelegateSubgroup=server" "$(grep -x 'DelegateSubgroup=server' "$UNIT")"
# The flags ExecStart uses exist (berth refuses unknown flags before doing anything).
args=$(sed -n 's#^ExecStart=/usr/local/bin/berth up ##p' "$UNIT")
expect_eq "ExecStart's flags are berth's" "0" "$("$BERTH_BIN" up $args --help >/dev/null 2>&1; echo $?)"
rm -rf "$DIR"
finish
